"""The chunked, head-fused cross-entropy equals the plain one (value and gradients); the answer-words loss."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microemo_jax.training.losses import answer_words_loss, chunked_next_token_loss, next_token_loss


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


def test_answer_words_loss_is_the_cross_entropy_of_each_answers_word_counts():
    logits = jnp.log(jnp.asarray([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8], [0.2, 0.3, 0.5]], jnp.float32))
    ids = jnp.asarray([[2, 0, 0, 1], [2, 2, 1, 0], [0, 1, 2, 0]], jnp.int32)
    mask = jnp.asarray([[0, 1, 1, 1], [0, 1, 1, 0], [0, 0, 0, 0]], bool)   # row 3: no answer, no weight
    # row 1's answer words: 0, 0, 1 -> -(2/3 log 0.5 + 1/3 log 0.25); row 2's: 2, 1 -> -(1/2 log 0.8 + 1/2 log 0.1);
    # each weighs its number of words (3 and 2)
    want = (-3 * (2 / 3 * np.log(0.5) + 1 / 3 * np.log(0.25)) - 2 * (np.log(0.8) + np.log(0.1)) / 2) / 5
    loss, count = answer_words_loss(logits, ids, mask)
    assert float(loss) == pytest.approx(want, rel=1e-6) and float(count) == 5.0
    assert float(count) == float(next_token_loss(jnp.zeros((3, 4, 3)), ids, mask)[1])   # the same answer tokens
    assert [float(x) for x in answer_words_loss(logits, ids, jnp.zeros_like(mask))] == [0.0, 0.0]
