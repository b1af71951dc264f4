"""Attention implementations agree with the plain-einsum reference, in value and in gradients."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microemo_jax.models.layers import attention

CASES = {  # b, sq, heads, kv_heads, sk, head_dim, mask heads (0: no mask)
    'gqa_shared_mask': (2, 7, 8, 2, 9, 16, 1),
    'per_head_mask': (2, 5, 4, 4, 6, 8, 4),
    'no_mask': (1, 6, 4, 2, 6, 8, 0),
}


@pytest.mark.parametrize('implementation', [None, 'xla'])
@pytest.mark.parametrize('case', sorted(CASES))
def test_attention_matches_the_reference_with_gradients(case, implementation):
    """``None`` on the CPU is the hand-written backward pass (layers._cpu_attention); a query row with no
    allowed key gives zeros and passes no gradient."""
    b, sq, h, hk, sk, d, mask_heads = CASES[case]
    rng = np.random.default_rng(3)  # numpy: no per-shape compilation of random ops
    q, k, v, weights = (rng.standard_normal(shape, np.float32) for shape in
                        ((b, sq, h, d), (b, sk, hk, d), (b, sk, hk, d), (b, sq, h, d)))
    mask = None
    if mask_heads:
        mask = rng.random((b, mask_heads, sq, sk)) < 0.6
        mask[0, :, 0] = False

    def loss(impl):
        return lambda q, k, v: jnp.sum(attention(q, k, v, mask, implementation=impl) * weights)

    want_loss, want_grads = jax.jit(jax.value_and_grad(loss('reference'), argnums=(0, 1, 2)))(q, k, v)
    got_loss, got_grads = jax.jit(jax.value_and_grad(loss(implementation), argnums=(0, 1, 2)))(q, k, v)
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5)
    for name, got, want in zip('qkv', got_grads, want_grads):
        assert np.abs(np.asarray(want)).max() > 0.1, name
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0, err_msg=f"d{name}")
    if mask is not None:
        assert not np.asarray(got_grads[0])[0, 0].any()  # the row with no allowed key


def test_the_cpu_default_is_the_hand_written_backward_pass():
    """implementation=None on a CPU backend must take layers._cpu_attention (a custom VJP), not JAX's."""
    q = jnp.ones((1, 4, 2, 8))
    jaxpr = str(jax.make_jaxpr(lambda q: attention(q, q, q))(q))
    assert 'custom_vjp_call' in jaxpr
    assert 'custom_vjp_call' not in str(jax.make_jaxpr(lambda q: attention(q, q, q, implementation='xla'))(q))
