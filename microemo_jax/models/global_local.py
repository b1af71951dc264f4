"""Global-local attention: each frame's global (timestamp-bound) tokens read that anchor's face tokens.

Per frame i, the global query tokens cross-attend to the local micro-expression tokens of anchor i
(and, optionally, of ``neighbours`` anchors on each side), followed by an MLP; both residual branches
are scaled by tanh(gate) with gates initialised to 0 (Flamingo-style), so a pretrained global pipeline
computes exactly what it did before the local branch was attached. A pipeline trained from scratch (the
demo) has nothing to protect: ``gate_init`` > 0 (``model.global_local.gate_init``) opens the gates from the
start, so the branch gets gradients from the first step (a closed gate passes none to what is behind it).
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from microemo_jax.models.blocks import MLP, MultiHeadAttention
from microemo_jax.models.layers import LayerNorm, param


def _neighbourhood(x, n: int):
    """(B, T, K, ...) -> (B, T, (2n+1)K, ...): tokens of frames i-n..i+n (zero-padded at the ends)."""
    if n == 0:
        return x
    t = x.shape[1]
    pad = [(0, 0), (n, n)] + [(0, 0)] * (x.ndim - 2)
    xp = jnp.pad(x, pad)
    return jnp.concatenate([xp[:, j:j + t] for j in range(2 * n + 1)], axis=2)


class GlobalLocalAttention(nnx.Module):

    def __init__(self, global_dim: int, local_dim: int, num_heads: int, *, neighbours: int = 0,
                 gate_init: float = 0.0, dtype=jnp.float32, param_dtype=jnp.float32, attention_impl=None,
                 rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.neighbours = neighbours
        self.norm_global = LayerNorm(global_dim, **kw)
        self.norm_local = LayerNorm(local_dim, **kw)
        self.cross = MultiHeadAttention(global_dim, local_dim, num_heads, attention_impl=attention_impl, **kw)
        self.norm_mlp = LayerNorm(global_dim, **kw)
        self.mlp = MLP(global_dim, 4 * global_dim, **kw)
        self.attn_gate = param(rngs, nnx.initializers.constant(gate_init), (1,), (None,), param_dtype)
        self.mlp_gate = param(rngs, nnx.initializers.constant(gate_init), (1,), (None,), param_dtype)

    def __call__(self, global_tokens, local_tokens, local_mask):
        """global (B, T, Q, Dg), local (B, T, K, Dl), local_mask (B, T, K) -> (B, T, Q, Dg)."""
        b, t, q, dg = global_tokens.shape
        local = _neighbourhood(local_tokens, self.neighbours)
        mask = _neighbourhood(local_mask.astype(bool), self.neighbours)
        k = local.shape[2]
        x = global_tokens.reshape(b * t, q, dg)
        ctx = self.norm_local(local.reshape(b * t, k, -1))
        attn = self.cross(self.norm_global(x), ctx, mask.reshape(b * t, 1, 1, k))
        x = x + jnp.tanh(self.attn_gate[...]).astype(x.dtype) * attn
        x = x + jnp.tanh(self.mlp_gate[...]).astype(x.dtype) * self.mlp(self.norm_mlp(x))
        return x.reshape(b, t, q, dg)
