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
