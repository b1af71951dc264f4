"""Micro-expression local branch: dynamics of the speaker's face around each anchor frame.

Micro-expressions last under 0.5 s, so each anchor t_i gets a *tubelet* of K consecutive face crops at
the native frame rate. Per-crop features f_{i,k} (from the face encoder) become K tokens: the
appearance f_{i,0} and the first-order differences f_{i,k} - f_{i,k-1} (the motion that carries the
micro-expression), each with a temporal position embedding, then temporal self-attention. Crops are
packed at the front of the tubelet; ``face_mask`` marks the real ones.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from microemo_jax.models.blocks import SelfAttentionBlock
from microemo_jax.models.layers import Dense, LayerNorm, default_kernel_init, param, split_rng


class MicroExpressionBranch(nnx.Module):

    def __init__(self, feature_dim: int, hidden_size: int, num_crops: int, num_layers: int, num_heads: int, *,
                 use_differences: bool = True, dropout_rate: float = 0.0, dtype=jnp.float32,
                 param_dtype=jnp.float32, attention_impl=None, rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.num_crops, self.use_differences = num_crops, use_differences
        self.appearance = Dense(feature_dim, hidden_size, axes=('embed', 'embed'), **kw)
        self.motion = Dense(feature_dim, hidden_size, axes=('embed', 'embed'), **kw) if use_differences else None
        self.temporal_pos = param(rngs, default_kernel_init, (num_crops, hidden_size), ('pos', 'embed'), param_dtype)
        self.blocks = nnx.List([SelfAttentionBlock(hidden_size, num_heads, dropout_rate=dropout_rate,
                                                   attention_impl=attention_impl, **kw)
                                for _ in range(num_layers)])
        self.norm = LayerNorm(hidden_size, **kw)

    def __call__(self, features, face_mask, *, dropout_rng=None):
        """features (B, T, K, F), face_mask (B, T, K) -> local tokens (B, T, K, D), token mask (B, T, K)."""
        if features.ndim != 4 or features.shape[2] != self.num_crops:
            raise ValueError(f"face features must be (batch, frames, {self.num_crops} crops, dim), "
                             f"got {features.shape}")
        b, t, k, f = features.shape
        valid = face_mask.astype(bool)
        if self.use_differences:
            first = self.appearance(features[:, :, :1])
            moves = self.motion(features[:, :, 1:] - features[:, :, :-1])
            tokens = jnp.concatenate([first, moves], axis=2)
            valid = jnp.concatenate([valid[:, :, :1], valid[:, :, 1:] & valid[:, :, :-1]], axis=2)
        else:
            tokens = self.appearance(features)
        tokens = tokens + self.temporal_pos[...].astype(tokens.dtype)
        x = tokens.reshape(b * t, k, -1)
        flat_valid = valid.reshape(b * t, k)
        for block, rng in zip(self.blocks, split_rng(dropout_rng, len(self.blocks))):
            x = block(x, flat_valid, dropout_rng=rng)
        x = self.norm(x).reshape(b, t, k, -1)
        return jnp.where(valid[..., None], x, 0), valid
