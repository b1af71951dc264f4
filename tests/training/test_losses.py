"""The chunked, head-fused cross-entropy equals the plain one (value and gradients)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microemo_jax.training.losses import chunked_next_token_loss, next_token_loss


def _inputs(seed=0, b=2, s=7, d=8, v=50, all_masked=False):
    rng = np.random.default_rng(seed)
    h = jnp.asarray(rng.standard_normal((b, s, d)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((d, v)) * 0.5, jnp.float32)
    ids = jnp.asarray(rng.integers(0, v, (b, s)), jnp.int32)
    mask = np.zeros((b, s), bool) if all_masked else rng.random((b, s)) < 0.6
    return h, w, ids, jnp.asarray(mask)


def _plain(h, w, ids, mask):
    return next_token_loss(jnp.einsum('bsd,dv->bsv', h, w), ids, mask)


@pytest.mark.parametrize('chunk', [1, 4, 5, 1000])     # one row, padded chunks, exact split, one chunk
def test_chunked_loss_and_gradients_equal_the_plain_loss(chunk):
    h, w, ids, mask = _inputs()
    (want, want_n), (got, got_n) = _plain(h, w, ids, mask), chunked_next_token_loss(h, w, ids, mask, chunk=chunk)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert float(got_n) == float(want_n)
    g_want = jax.grad(lambda h, w: _plain(h, w, ids, mask)[0], argnums=(0, 1))(h, w)
    g_got = jax.jit(jax.grad(lambda h, w: chunked_next_token_loss(h, w, ids, mask, chunk=chunk)[0],
                             argnums=(0, 1)))(h, w)
    for a, b in zip(g_got, g_want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_scaled_cotangent_and_no_answer_tokens():
    h, w, ids, mask = _inputs(seed=1)
    g_want = jax.grad(lambda h: 3.0 * _plain(h, w, ids, mask)[0])(h)
    g_got = jax.grad(lambda h: 3.0 * chunked_next_token_loss(h, w, ids, mask, chunk=3)[0])(h)
    np.testing.assert_allclose(g_got, g_want, rtol=1e-5, atol=1e-6)
    h, w, ids, mask = _inputs(all_masked=True)
    loss, n = chunked_next_token_loss(h, w, ids, mask, chunk=4)
    assert float(loss) == 0.0 and float(n) == 0.0
    assert not np.asarray(jax.grad(lambda h: chunked_next_token_loss(h, w, ids, mask, chunk=4)[0])(h)).any()
