"""Low-rank adapters (LoRA) on Dense layers, and merging them into the base kernel for export.

Adapter weights are ``nnx.LoRAParam`` (a subclass of ``nnx.Param``) so a training stage can select
them with a type filter. B starts at zero, so a model with fresh adapters computes exactly what the
base model computes.

The dependency goes one way: this module builds on ``layers`` (parameters, dropout, ``Dense``);
``layers.Dense`` builds its adapter through ``LoRAConfig.adapter`` without importing this module.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from microemo_jax.models.layers import Dense, dropout, param


@dataclasses.dataclass(frozen=True)
class LoRAConfig:
    rank: int = 32
    alpha: float = 32.0
    dropout: float = 0.1

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def adapter(self, in_features: int, out_features: int, *, axes, param_dtype, rngs: nnx.Rngs) -> 'LoRAAdapter':
        """The adapter a ``Dense`` of this shape carries."""
        return LoRAAdapter(in_features, out_features, self, axes=axes, param_dtype=param_dtype, rngs=rngs)


class LoRAAdapter(nnx.Module):
    """delta(x) = dropout(x) @ A @ B * alpha / rank."""

    def __init__(self, in_features: int, out_features: int, cfg: LoRAConfig, *, axes, param_dtype=jnp.float32,
                 rngs: nnx.Rngs):
        self.cfg = cfg
        a_init = nnx.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')  # kaiming_uniform(a=sqrt(5))
        self.a = param(rngs, a_init, (in_features, cfg.rank), (axes[0], None), jnp.float32, kind=nnx.LoRAParam)
        self.b = param(rngs, nnx.initializers.zeros, (cfg.rank, out_features), (None, axes[1]), jnp.float32,
                       kind=nnx.LoRAParam)

    def __call__(self, x: jax.Array, *, dropout_rng: jax.Array | None = None) -> jax.Array:
        x = dropout(x, self.cfg.dropout, dropout_rng)
        return (x @ self.a[...].astype(x.dtype)) @ self.b[...].astype(x.dtype) * self.cfg.scale

    def delta_kernel(self) -> jax.Array:
        """The (in, out) matrix the adapter adds to the base kernel ((L, in, out) for stacked layers)."""
        return (self.a[...] @ self.b[...]) * self.cfg.scale


def merge_lora(module: nnx.Module) -> nnx.Module:
    """Fold every adapter under ``module`` into its Dense kernel and drop it (in place; returns module)."""
    for _, node in nnx.iter_graph(module):
        if isinstance(node, Dense) and node.lora is not None:
            kernel = node.kernel[...]
            delta = node.lora.delta_kernel()
            node.kernel[...] = (kernel.astype(jnp.float32) + delta).astype(kernel.dtype)
            node.lora = None
    return module


def lora_config_for(name: str, lora_cfg: LoRAConfig | None, targets) -> LoRAConfig | None:
    """The adapter config for the Dense called ``name`` if it is one of ``targets``, else None."""
    if lora_cfg is None or lora_cfg.rank <= 0 or name not in tuple(targets):
        return None
    return lora_cfg
