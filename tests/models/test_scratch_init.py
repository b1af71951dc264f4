"""model.kernel_init='fan_in': the parts trained from scratch get N(0, 1/fan_in) weight matrices, nothing else."""
import jax.numpy as jnp
import numpy as np
from flax import nnx

from microemo_jax.models.layers import Dense, param
from microemo_jax.models.scratch_init import fan_in_init


class _Model(nnx.Module):
    def __init__(self, rngs):
        self.global_local = Dense(256, 64, axes=('embed', 'embed'), rngs=rngs)        # from scratch
        self.video_qformer = nnx.Dict(kernel=param(rngs, nnx.initializers.zeros, (3, 128, 32),
                                                    ('layers', 'embed', 'mlp'), jnp.float32))
        self.llm = Dense(256, 64, axes=('embed', 'embed'), rngs=rngs)                 # not listed: untouched


def test_fan_in_init_redraws_the_listed_weight_matrices_only():
    model = _Model(nnx.Rngs(0))
    llm_before = np.asarray(model.llm.kernel[...]).copy()
    bias_before = np.asarray(model.global_local.bias[...]).copy()
    fan_in_init(model, nnx.Rngs(1), parts=(('global_local',), ('video_qformer',)))
    np.testing.assert_allclose(np.asarray(model.global_local.kernel[...]).std(), 1 / np.sqrt(256), rtol=0.05)
    scanned = np.asarray(model.video_qformer['kernel'][...])
    np.testing.assert_allclose(scanned.std(axis=(1, 2)), 1 / np.sqrt(128), rtol=0.1)   # per layer: fan_in 128
    np.testing.assert_array_equal(np.asarray(model.llm.kernel[...]), llm_before)
    np.testing.assert_array_equal(np.asarray(model.global_local.bias[...]), bias_before)   # biases stay
    assert abs(llm_before.std() - 0.02) < 0.002                                          # the default: BERT's 0.02


def test_the_demo_init_lets_faces_frames_and_audio_reach_the_llm_input():
    """Under BERT's N(0, 0.02) the tiny/demo parts trained from scratch pass almost nothing of their inputs on
    (why the demo model once ignored its faces); under 'fan_in' another clip's faces, frames or audio move the
    LLM-input tokens by a visible share. input_influence is what benchmarks/input_influence.py prints."""
    from microemo_jax.batch import synthetic_batch
    from microemo_jax.config import load_config
    from microemo_jax.models.input_influence import influence
    from microemo_jax.models.microemo import MicroEmo
    shares = {}
    for init in ('bert', 'fan_in'):
        m = load_config('configs/emer.py:tiny', [f'model.kernel_init={init}', 'model.global_local.gate_init=0.5']).model
        shares[init] = influence(MicroEmo(m, rngs=nnx.Rngs(0)), synthetic_batch(m, 3, 96, seed=2))
    for name, part in (('faces', 'video'), ('frames', 'video'), ('audio', 'audio')):
        assert shares['fan_in'][name][part] > 0.003, (name, shares)
        assert shares['bert'][name][part] < 0.2 * shares['fan_in'][name][part], (name, shares)
    assert shares['fan_in']['faces']['audio'] == 0.0 and shares['fan_in']['audio']['video'] == 0.0   # no cross-talk
