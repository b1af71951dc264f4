"""FLOP counting (scan-aware, unlike XLA's) and the MFU helpers."""
import jax
import jax.numpy as jnp
import pytest

from microemo_jax.training.flops import count_flops, estimate_mfu, flops_per_step, peak_flops_per_device


def test_jaxpr_count_multiplies_scan_bodies_and_includes_the_backward_pass():
    w = jax.ShapeDtypeStruct((8, 32, 32), jnp.float32)
    x = jax.ShapeDtypeStruct((16, 32), jnp.float32)

    def f(w, x):
        return jax.lax.scan(lambda c, wi: (c @ wi, None), x, w)[0].sum()

    forward = 8 * 2 * 16 * 32 * 32
    assert count_flops(f, w, x) == forward
    assert count_flops(jax.grad(f), w, x) == 3 * forward           # forward + two matmuls per layer backward
    compiled = jax.jit(f).lower(w, x).compile()
    assert flops_per_step(compiled) < forward                       # XLA counts the loop body once


def test_conv_flops():
    x = jax.ShapeDtypeStruct((2, 3, 32, 32), jnp.float32)
    k = jax.ShapeDtypeStruct((64, 3, 16, 16), jnp.float32)
    f = lambda x, k: jax.lax.conv_general_dilated(x, k, (16, 16), 'VALID')  # noqa: E731  patch embedding
    assert count_flops(f, x, k) == 2 * (2 * 64 * 2 * 2) * (3 * 16 * 16)


def test_mfu_helpers():
    assert peak_flops_per_device(jax.devices('cpu')[0]) is None
    assert estimate_mfu(1e15, 1.0, 8, None) is None
    assert estimate_mfu(1e15, 0.5, 4, 1e15) == pytest.approx(0.5)
