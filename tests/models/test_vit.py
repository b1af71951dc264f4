"""VisionTransformer: shapes, input validation, dtypes, dropout, parameter axes."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from microemo_jax.models.layers import ACTIVATIONS
from microemo_jax.models.vit import VisionConfig, VisionTransformer

CFG = VisionConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4, patch_size=8, image_size=32)


def _pixels(shape=(2, 3, 32, 32), seed=0):
    return jax.random.normal(jax.random.key(seed), shape)


@pytest.fixture(scope='module')
def model():
    return VisionTransformer(CFG, rngs=nnx.Rngs(0))


def test_output_shape(model):
    out = model(_pixels())
    assert out.shape == (2, 1 + 16, 32) and out.dtype == jnp.float32
    assert np.isfinite(np.asarray(out)).all()


@pytest.mark.parametrize('shape, match', [
    ((3, 32, 32), 'rank 4'),
    ((2, 1, 32, 32), '1 channels'),
    ((2, 32, 32, 3), 'channels-last'),
    ((2, 3, 28, 28), '28x28 but the position embeddings were learned for 32x32'),
    ((2, 3, 32, 40), 'resize the images to 32x32'),
])
def test_bad_input_shapes(model, shape, match):
    with pytest.raises(ValueError, match=match):
        model(jnp.zeros(shape))


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_heads=5), 'not divisible by num_heads'),
    (dict(image_size=30), 'not a multiple of patch_size'),
    (dict(hidden_act='mish'), 'hidden_act'),       # not in layers.ACTIVATIONS ('swish' is, since the one table)
])
def test_bad_config(kwargs, match):
    base = dict(hidden_size=32, intermediate_size=64, num_layers=1, num_heads=4, patch_size=8, image_size=32)
    with pytest.raises(ValueError, match=match):
        VisionConfig(**{**base, **kwargs})


def test_bfloat16_compute_close_to_float32(model):
    bf16 = VisionTransformer(CFG, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))  # same seed: same float32 params
    x = _pixels()
    ref, out = model(x), bf16(x)
    assert out.dtype == jnp.bfloat16
    err = np.abs(np.asarray(out, np.float32) - np.asarray(ref)).max() / np.abs(np.asarray(ref)).max()
    assert err < 5e-2, err


def test_gelu_is_exact_erf():
    x = np.linspace(-4, 4, 101)
    expected = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(ACTIVATIONS['gelu'](jnp.asarray(x, jnp.float32)), expected, atol=2e-6)
    assert np.abs(np.asarray(ACTIVATIONS['gelu_pytorch_tanh'](jnp.asarray(x, jnp.float32))) - expected).max() > 1e-4


@pytest.mark.parametrize('scan', [False, True])
def test_attention_dropout(scan):
    cfg = VisionConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4, patch_size=8,
                       image_size=32, attention_dropout=0.5)
    m = VisionTransformer(cfg, scan=scan, rngs=nnx.Rngs(1))
    x = _pixels()
    det = m(x)
    np.testing.assert_array_equal(m(x, dropout_rng=None), det)
    a, b = m(x, dropout_rng=jax.random.key(3)), m(x, dropout_rng=jax.random.key(3))
    np.testing.assert_array_equal(a, b)
    assert np.abs(np.asarray(a) - np.asarray(det)).max() > 1e-3


def test_parameter_axes():
    m = VisionTransformer(CFG, scan=True, rngs=nnx.Rngs(0))
    for path, var in nnx.to_flat_state(nnx.state(m, nnx.Param)):
        axes = var.get_metadata()['axes']
        assert len(axes) == var.get_value().ndim, path
    assert m.encoder.blocks.self_attn.query.kernel.get_metadata()['axes'] == ('layers', 'embed', 'heads')
    assert m.embeddings.position_embedding.get_metadata()['axes'] == ('pos', 'embed')
    assert m.embeddings.patch.kernel.get_metadata()['axes'] == ('patch', 'embed')
