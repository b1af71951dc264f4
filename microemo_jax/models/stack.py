"""A stack of identical blocks, unrolled (a list) or scanned (parameters stacked on a 'layers' axis).

Scanning compiles one block instead of N (fast compiles, MaxText's default); the unrolled form is
easier to inspect. Both hold the same numbers: ``stack_states``/``unstack_states`` convert between them.

Between layers the activations are pinned to the mesh's batch axes (``sharding.constrain_batch``, active
inside the train/eval steps), so FSDP gathers weights rather than activations.

A block is called as ``block(x, xs, **kwargs) -> (x, ys)`` where ``xs``/``ys`` are per-layer
pytrees (KV cache slices, dropout keys; None when unused) and ``kwargs`` are shared by all layers.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx

from microemo_jax.sharding import constrain_batch

REMAT_POLICIES = ('none', 'full', 'dots_saveable', 'nothing_saveable', 'dots_with_no_batch_dims_saveable',
                  'everything_saveable')


def remat(fn: Callable, policy: str) -> Callable:
    """Wrap ``fn`` in jax.checkpoint with a named policy ('none' = no rematerialisation)."""
    if policy not in REMAT_POLICIES:
        raise ValueError(f"remat policy {policy!r} is not one of {REMAT_POLICIES}")
    if policy == 'none':
        return fn
    if policy == 'full':
        return jax.checkpoint(fn)
    return jax.checkpoint(fn, policy=getattr(jax.checkpoint_policies, policy))


def _add_layers_axis(module: nnx.Module) -> None:
    for _, node in nnx.iter_graph(module):
        if isinstance(node, nnx.Variable):
            axes = node.get_metadata().get('axes')
            if axes is not None and node.get_value().ndim == len(axes) + 1:
                node.set_metadata(axes=('layers',) + tuple(axes))


class LayerStack(nnx.Module):
    """``num_layers`` blocks built by ``make_block(rngs)``."""

    def __init__(self, make_block: Callable[[nnx.Rngs], nnx.Module], num_layers: int, *, scan: bool,
                 remat_policy: str = 'none', rngs: nnx.Rngs):
        remat(lambda: None, remat_policy)  # validate early
        self.num_layers, self.scan, self.remat_policy = num_layers, scan, remat_policy
        if scan:
            @nnx.split_rngs(splits=num_layers)
            @nnx.vmap(in_axes=(0,), out_axes=0)
            def build(r):
                return make_block(r)
            self.blocks = build(rngs)
            _add_layers_axis(self.blocks)
        else:
            self.blocks = nnx.List([make_block(rngs) for _ in range(num_layers)])

    def __call__(self, x: jax.Array, xs: Any = None, **kwargs) -> tuple[jax.Array, Any]:
        if self.scan:
            graphdef, state = nnx.split(self.blocks)

            def body(carry, layer):
                layer_state, layer_xs = layer
                carry, ys = nnx.merge(graphdef, layer_state)(constrain_batch(carry), layer_xs, **kwargs)
                return constrain_batch(carry), ys

            return jax.lax.scan(remat(body, self.remat_policy), x, (state, xs))
        ys = []
        for i, block in enumerate(self.blocks):
            layer_xs = jax.tree.map(lambda a: a[i], xs)
            x, y = remat(lambda c, a, b=block: b(constrain_batch(c), a, **kwargs), self.remat_policy)(x, layer_xs)
            x = constrain_batch(x)
            ys.append(y)
        ys = None if all(y is None for y in ys) else jax.tree.map(lambda *a: jnp.stack(a), *ys)
        return x, ys

    def layer(self, i: int) -> nnx.Module:
        """Block ``i`` as a standalone module (a copy when scanned)."""
        if not self.scan:
            return self.blocks[i]
        graphdef, state = nnx.split(self.blocks)
        return nnx.merge(graphdef, jax.tree.map(lambda a: a[i], state))
