"""Device mesh from the config and the mapping of logical axis names to mesh axes.

Parameters carry logical names in their ``axes`` metadata (see ``models/layers.py``). The config's
``sharding_rules`` table, ordered pairs ``(logical_name, mesh_axis | (mesh_axes...) | None)``, decides
where each goes (MaxText style). A dimension whose size the mesh axes do not divide stays replicated,
and a mesh axis is used at most once per array.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Mapping, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ('data', 'fsdp', 'tensor')


class ShardingError(ValueError):
    """The mesh does not fit the devices, or an axis name has no rule."""


def mesh_shape(sizes: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
    """Resolve the sizes of ('data', 'fsdp', 'tensor'); at most one may be -1 (= the rest)."""
    unknown = set(sizes) - set(MESH_AXES)
    if unknown:
        raise ShardingError(f"mesh axes {sorted(unknown)} are unknown; the mesh has {MESH_AXES}")
    shape = [int(sizes.get(a, 1)) for a in MESH_AXES]
    if shape.count(-1) > 1:
        raise ShardingError(f"at most one mesh axis may be -1, got {dict(zip(MESH_AXES, shape))}")
    if any(s == 0 or s < -1 for s in shape):
        raise ShardingError(f"mesh sizes must be positive or -1, got {dict(zip(MESH_AXES, shape))}")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if num_devices % known:
            raise ShardingError(f"mesh {dict(zip(MESH_AXES, shape))} does not divide the {num_devices} devices")
        shape[shape.index(-1)] = num_devices // known
    if math.prod(shape) != num_devices:
        raise ShardingError(f"mesh {dict(zip(MESH_AXES, shape))} needs {math.prod(shape)} devices, "
                            f"but {num_devices} are available")
    return tuple(shape)


def make_mesh(sizes: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    devices = list(devices if devices is not None else jax.devices())
    shape = mesh_shape(dict(sizes), len(devices))
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES)


def logical_to_spec(axes: Sequence[str | None], shape: Sequence[int], rules, mesh: Mesh) -> P:
    """PartitionSpec for an array of ``shape`` whose dimensions have logical names ``axes``."""
    table = dict((name, target) for name, target in rules)
    used: set[str] = set()
    spec = []
    for name, size in zip(axes, shape):
        if name is None:
            spec.append(None)
            continue
        if name not in table:
            raise ShardingError(f"logical axis {name!r} has no entry in config.sharding_rules "
                                f"(known: {sorted(table)})")
        target = table[name]
        targets = () if target is None else ((target,) if isinstance(target, str) else tuple(target))
        chosen = tuple(t for t in targets if t not in used and mesh.shape[t] > 1)
        if chosen and size % math.prod(mesh.shape[t] for t in chosen) == 0:
            used.update(chosen)
            spec.append(chosen[0] if len(chosen) == 1 else chosen)
        else:
            spec.append(None)
    return P(*spec)


def variable_axes(var: nnx.Variable) -> tuple[str | None, ...]:
    axes = var.get_metadata().get('axes')
    value = var.get_value()
    if axes is None:
        return (None,) * np.ndim(value)
    if len(axes) != np.ndim(value):
        raise ShardingError(f"parameter of shape {np.shape(value)} is annotated with axes {axes}")
    return tuple(axes)


def state_shardings(state: nnx.State, mesh: Mesh, rules) -> nnx.State:
    """A tree like ``state`` holding a NamedSharding per variable (for jit in/out_shardings, Orbax)."""
    def one(var):
        if not isinstance(var, nnx.Variable):
            return NamedSharding(mesh, P())
        spec = logical_to_spec(variable_axes(var), np.shape(var.get_value()), rules, mesh)
        return var.replace(NamedSharding(mesh, spec))
    return jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def batch_sharding(mesh: Mesh, rules, ndim: int) -> NamedSharding:
    """Sharding of a batch array: leading dimension over the 'batch' rule, the rest replicated."""
    spec = logical_to_spec(('batch',) + (None,) * (ndim - 1), (math.prod(mesh.devices.shape),) + (1,) * (ndim - 1),
                           rules, mesh)
    return NamedSharding(mesh, spec)


def split_batch(batch_size: int, *, processes: int = 1, shards: int = 1, accum_steps: int = 1,
                mesh: Mesh | None = None, what: str = 'data.batch_size') -> int:
    """The rows each process loads: ``batch_size`` split over ``processes``; raises if it does not split.

    The one check of how a global batch divides: over the mesh's ``shards`` batch shards, over the
    ``processes`` that each load their part, and into ``accum_steps`` micro-batches that each still
    spread over every shard. ``train`` calls it before compiling, the pipeline, the train step and
    ``plan`` call it with what they know; the error names ``what`` (the setting to change) and the mesh.
    """
    b, on = batch_size, f" (mesh {dict(mesh.shape)})" if mesh is not None else ''
    if b % shards:
        raise ShardingError(f"{what}={b} does not divide over the {shards} devices of the mesh's batch axes{on}; "
                            f"use a multiple of {shards}")
    if b % processes:
        raise ShardingError(f"{what}={b} does not divide over the {processes} processes; use a multiple of "
                            f"{processes}")
    if b % (accum_steps * shards):
        raise ShardingError(f"{what}={b} does not split into optim.grad_accum_steps={accum_steps} micro-batches of "
                            f"a multiple of {shards} (the mesh's batch axes){on}, so that every micro-batch spreads "
                            f"over all devices; use a multiple of {accum_steps * shards}")
    return b // processes


_ACTIVATIONS: contextvars.ContextVar = contextvars.ContextVar('microemo_activation_sharding', default=None)


@contextlib.contextmanager
def activation_sharding(mesh: Mesh, rules):
    """While tracing inside this context, ``constrain_batch`` pins activations to the 'batch' rule.

    Without it, XLA may resolve FSDP by gathering activations instead of weights, so every device would
    compute the whole global batch. The train and eval steps trace the model inside this context.
    """
    token = _ACTIVATIONS.set((mesh, rules))
    try:
        yield
    finally:
        _ACTIVATIONS.reset(token)


def constrain_batch(x: jax.Array) -> jax.Array:
    """Shard ``x``'s leading (batch-like) axis over the mesh's batch axes; a no-op outside the context."""
    ctx = _ACTIVATIONS.get()
    if ctx is None:
        return x
    mesh, rules = ctx
    spec = logical_to_spec(('batch',) + (None,) * (x.ndim - 1), x.shape, rules, mesh)
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
