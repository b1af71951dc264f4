"""What the machine itself allows, measured in the same run as a benchmark: the bounds its figures are read
against (these machines are shared, so a bound measured another hour says little).

* ``f32_matmul_peak``: FLOP/s of the fastest large float32 matmul XLA runs on the device.
* ``read_seconds``: the time XLA takes to read a number of bytes once, on all cores (the memory floor of a
  step that must read that many bytes of weights).
* ``matmul_seconds``: the time a decode step's weight matmuls alone take at a given batch on this backend,
  each weight its own buffer so that it comes from memory as in the real step (the floor a step built from
  XLA's own dot library cannot go under).
"""
from __future__ import annotations

import time


def _fastest(fn, *args, repeats: int) -> float:
    import jax
    jax.block_until_ready(fn(*args))
    best = float('inf')
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return best


def f32_matmul_peak(device=None, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of the fastest of ``repeats`` jitted float32 (n, n) @ (n, n) matmuls on ``device``."""
    import jax
    import jax.numpy as jnp
    a = jax.device_put(jnp.ones((n, n), jnp.float32), device or jax.devices()[0])
    return 2 * n ** 3 / _fastest(jax.jit(lambda x: x @ x), a, repeats=repeats)


def read_seconds(nbytes: int, repeats: int = 5) -> float:
    """Seconds XLA takes to sum ``nbytes`` of float32 (fastest of ``repeats``): reading them once."""
    import jax
    import jax.numpy as jnp
    a = jnp.ones((nbytes // 4,), jnp.float32)
    return _fastest(jax.jit(jnp.sum), a, repeats=repeats)


def matmul_seconds(shapes, rows: int, iterations: int = 16, repeats: int = 3) -> float:
    """Seconds per iteration of a loop that multiplies a (rows, in) float32 input by one weight of every
    (in, out) shape in ``shapes``, and nothing else (fastest of ``repeats`` loops of ``iterations``)."""
    import jax
    import jax.numpy as jnp
    weights = [jnp.full(shape, 1e-3, jnp.float32) + i for i, shape in enumerate(shapes)]
    x = jnp.ones((rows, max(s[0] for s in shapes)), jnp.float32)

    @jax.jit
    def loop(weights, x):
        def body(_, carry):  # each product feeds the next iteration, so none is dropped or hoisted
            return carry + sum(jnp.sum(x[:, :w.shape[0]] * carry @ w) for w in weights) * 1e-30
        return jax.lax.fori_loop(0, iterations, body, jnp.float32(1.0))
    return _fastest(loop, weights, x, repeats=repeats) / iterations
