"""FLOPs of a train step and model-FLOPs utilisation (MFU).

Two counts, because XLA's own one is wrong for this model:

* ``flops_per_step(compiled)``: ``compiled.cost_analysis()['flops']``, what XLA reports for the
  compiled per-device program. XLA's HloCostAnalysis counts the body of a while loop ONCE, so with
  scanned layers (``model.scan_layers``) or micro-batch accumulation it undercounts by about the number
  of layers (measured: a 8-step scan of matmuls reports 1/8 of the FLOPs). Use it only for unrolled
  programs or as a lower bound.
* ``count_flops(fn, *args)``: walks the jaxpr of ``fn`` (abstract args are enough: nothing compiles)
  and adds 2*M*N*K for every ``dot_general`` and the equivalent for every convolution, multiplying the
  body of a ``scan`` by its length and taking the largest branch of a ``cond``. This is the global
  (all devices) matmul FLOP count of one step, including the backward pass and any rematerialised
  forward recomputation (so strictly it is hardware FLOPs; without remat it equals model FLOPs).
  Elementwise work is ignored (a few percent for transformers). This is what MFU uses.

MFU = flops_per_step / step_time / (num_devices * peak FLOP/s per device), the MaxText definition.
"""
from __future__ import annotations

import math

import jax
import numpy as np

# Dense bf16 peak FLOP/s per device (vendor data sheets), matched against ``device.device_kind``.
PEAK_FLOPS = (
    ('H100', 989e12),
    ('H200', 989e12),
    ('GH200', 989e12),
    ('A100', 312e12),
    ('TPU v5 lite', 197e12),
    ('TPU v5e', 197e12),
    ('TPU v5p', 459e12),
    ('TPU v5', 459e12),
    ('TPU v6 lite', 918e12),
    ('TPU v6e', 918e12),
    ('TPU v4', 275e12),
)


def peak_flops_per_device(device: jax.Device | None = None) -> float | None:
    """Peak bf16 FLOP/s of ``device`` (default: the first device); None when unknown (e.g. CPU)."""
    device = device or jax.devices()[0]
    if device.platform == 'cpu':
        return None
    kind = device.device_kind
    for name, peak in PEAK_FLOPS:
        if name.lower() in kind.lower():
            return peak
    return None


def estimate_mfu(flops_per_step: float | None, step_time_s: float, num_devices: int,
                 peak_per_device: float | None) -> float | None:
    """Fraction of peak reached, or None when the FLOP count or the peak is unknown."""
    if not flops_per_step or not peak_per_device or step_time_s <= 0:
        return None
    return flops_per_step / step_time_s / (num_devices * peak_per_device)


def flops_per_step(compiled) -> float | None:
    """FLOPs XLA reports for a compiled step (per device; while-loop bodies counted once: see above)."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # some backends do not implement it
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    if not cost or 'flops' not in cost:
        return None
    return float(cost['flops'])


def _dot_flops(eqn) -> float:
    lhs, _ = (v.aval for v in eqn.invars)
    (contract, _), _ = eqn.params['dimension_numbers']
    out = eqn.outvars[0].aval
    return 2.0 * math.prod(out.shape) * math.prod(lhs.shape[d] for d in contract)


def _conv_flops(eqn) -> float:
    _, rhs = (v.aval for v in eqn.invars)
    out = eqn.outvars[0].aval
    dn = eqn.params['dimension_numbers']
    rhs_spec = dn.rhs_spec  # (out feature dim, in feature dim, spatial...)
    kernel = math.prod(rhs.shape[d] for d in rhs_spec[1:])  # in_features/groups * spatial
    return 2.0 * math.prod(out.shape) * kernel


def _sub_jaxprs(value):
    if isinstance(value, jax.extend.core.ClosedJaxpr):
        yield value.jaxpr
    elif isinstance(value, jax.extend.core.Jaxpr):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _sub_jaxprs(v)


def _jaxpr_flops(jaxpr) -> float:
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == 'dot_general':
            total += _dot_flops(eqn)
        elif name == 'conv_general_dilated':
            total += _conv_flops(eqn)
        elif name == 'cond':
            total += max((_jaxpr_flops(b.jaxpr) for b in eqn.params['branches']), default=0.0)
        else:
            inner = sum(_jaxpr_flops(j) for v in eqn.params.values() for j in _sub_jaxprs(v))
            if name == 'scan':
                inner *= eqn.params['length']
            total += inner
    return total


def count_flops(fn, *args, **kwargs) -> float:
    """Global matmul/conv FLOPs of one call of ``fn`` (a jitted step is fine; args may be abstract)."""
    return jaxpr_flops(jax.make_jaxpr(fn)(*args, **kwargs))


def jaxpr_flops(closed_jaxpr) -> float:
    """Global matmul/conv FLOPs of a closed jaxpr (e.g. ``jitted.trace(...).jaxpr``: no second trace)."""
    return _jaxpr_flops(closed_jaxpr.jaxpr)


def human(flops: float | None, unit: str = 'FLOP') -> str:
    if flops is None or not np.isfinite(flops):
        return 'n/a'
    for scale, prefix in ((1e15, 'P'), (1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
        if abs(flops) >= scale:
            return f"{flops / scale:.3g} {prefix}{unit}"
    return f"{flops:.3g} {unit}"
