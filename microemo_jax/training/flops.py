"""FLOPs of a train step, model-FLOPs utilisation (MFU) and hardware-FLOPs utilisation (HFU).

Two ways of counting, because XLA's own one is wrong for this model:

* ``flops_per_step(compiled)``: ``compiled.cost_analysis()['flops']``, what XLA reports for the
  compiled per-device program. XLA's HloCostAnalysis counts the body of a while loop ONCE, so with
  scanned layers (``model.scan_layers``) or micro-batch accumulation it undercounts by about the number
  of layers (measured: a 8-step scan of matmuls reports 1/8 of the FLOPs). Use it only for unrolled
  programs or as a lower bound.
* ``count_flops(fn, *args)`` / ``jaxpr_flops(jaxpr)``: walks a jaxpr (abstract args are enough: nothing
  compiles) and adds 2*M*N*K for every ``dot_general`` and the equivalent for every convolution,
  multiplying the body of a ``scan`` by its length and taking the largest branch of a ``cond``: the
  global (all devices) matmul FLOP count of one step. Elementwise work is ignored (a few percent for
  transformers).

What the jaxpr of the train step holds depends on remat, hence two figures (``train_step_flops``):

* **model FLOPs**: the forward pass and the backward pass the trained parameters need (activation
  gradients through frozen layers above a trained part, weight gradients of trained parameters only; no
  backward into a frozen tower below every trained part), without any recomputation. Counted on the
  jaxpr of the same step traced with ``model.remat_policy='none'``.
* **hardware FLOPs**: what the step really executes, the rematerialised forward recomputation of
  ``model.remat_policy`` included (the jaxpr of the step as compiled). Equal to model FLOPs without remat.

MFU = model FLOPs per step / step time / (num_devices * peak FLOP/s per device) (PaLM's and MaxText's
definition); HFU is the same with hardware FLOPs. HFU >= MFU; only MFU compares runs that remat
differently.
"""
from __future__ import annotations

import math

import jax
import jax.extend  # noqa: F401  (jax.extend.core: the jaxpr types; not imported by `import jax`)
import numpy as np

from microemo_jax.training import state as state_lib, step as step_lib

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
    """Fraction of peak reached, or None when the FLOP count or the peak is unknown.

    MFU when given model FLOPs, HFU when given hardware FLOPs (see the module docstring)."""
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


def train_step_flops(cfg, mesh, abstract, batch, *, jaxpr=None) -> dict[str, float]:
    """``{'model': ..., 'hardware': ...}``: global FLOPs of one train step of ``cfg`` (see the module docstring).

    ``abstract`` is ``state.abstract_train_state(cfg, mesh)``; ``batch`` the device batch (or abstract
    arrays with shardings); ``jaxpr`` the closed jaxpr of the compiled step when it was traced already
    (``jitted.trace(...).jaxpr``), which saves one trace. With remat on, the step is traced a second
    time with ``model.remat_policy='none'`` (a trace, not a compile).
    """
    state_sh, frozen_sh = state_lib.shardings_of(abstract.state), state_lib.shardings_of(abstract.frozen)

    def count(c, graphdef):
        fn = step_lib.make_train_step(graphdef, c, mesh, state_sh, frozen_sh, donate=False)
        return jaxpr_flops(fn.trace(abstract.state, abstract.frozen, batch).jaxpr)

    hardware = jaxpr_flops(jaxpr) if jaxpr is not None else count(cfg, abstract.graphdef)
    if cfg.model.remat_policy == 'none':
        return dict(model=hardware, hardware=hardware)
    plain = cfg.copy_and_resolve_references()
    plain.model.remat_policy = 'none'
    return dict(model=count(plain, state_lib.model_graphdef(plain)), hardware=hardware)
