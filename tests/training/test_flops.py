"""FLOP counting (scan-aware, unlike XLA's) and the MFU helpers."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from microemo_jax.training.flops import count_flops, estimate_mfu, flops_per_step, peak_flops_per_device
from tests.support.training import config


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


def test_flops_module_imports_on_its_own():
    # a scan: its body is a sub-jaxpr, recognised through jax.extend.core (not loaded by `import jax`)
    code = ('import jax; from microemo_jax.training.flops import count_flops; '
            'print(count_flops(lambda a: jax.lax.scan(lambda c, _: (c @ a, None), a, None, length=2)[0], '
            'jax.ShapeDtypeStruct((4, 4), "float32")))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, JAX_PLATFORMS='cpu'))
    assert out.returncode == 0 and out.stdout.strip() == '256.0', out.stderr[-2000:]


def test_model_flops_leave_out_the_remat_recomputation(setup):
    from microemo_jax.training import flops as flops_lib, state as state_lib
    cfg = config('model.remat_policy=nothing_saveable')
    abstract = setup.abstract._replace(graphdef=state_lib.model_graphdef(cfg))  # same arrays, remat'd layers
    counted = flops_lib.train_step_flops(cfg, setup.mesh, abstract, setup.batch)
    traced = setup.train_step.trace(setup.state, setup.frozen, setup.batch)  # the same model without remat
    assert counted['model'] == flops_lib.jaxpr_flops(traced.jaxpr) > 0
    assert counted['hardware'] > 1.1 * counted['model']              # + the recomputed forward of remat'd layers
    assert counted['hardware'] < 2 * counted['model']


def test_mfu_helpers():
    assert peak_flops_per_device(jax.devices('cpu')[0]) is None
    assert estimate_mfu(1e15, 1.0, 8, None) is None
    assert estimate_mfu(1e15, 0.5, 4, 1e15) == pytest.approx(0.5)
