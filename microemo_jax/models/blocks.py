"""Generic attention and MLP blocks for the parts MicroEmo adds (local branch, global-local fusion).

The pretrained towers (ViT, Q-Former, Whisper, LLaMA) keep their own layouts for checkpoint parity;
these blocks serve the new, randomly initialised modules.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from microemo_jax.models.layers import Dense, LayerNorm, attention, dropout, split_rng


class MultiHeadAttention(nnx.Module):
    """Attention from ``q_dim`` queries to ``kv_dim`` keys/values, output in ``q_dim``."""

    def __init__(self, q_dim: int, kv_dim: int, num_heads: int, *, dtype=jnp.float32, param_dtype=jnp.float32,
                 attention_impl=None, rngs: nnx.Rngs):
        if q_dim % num_heads:
            raise ValueError(f"attention width {q_dim} is not divisible by {num_heads} heads")
        self.num_heads, self.attention_impl = num_heads, attention_impl
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.q = Dense(q_dim, q_dim, axes=('embed', 'heads'), **kw)
        self.k = Dense(kv_dim, q_dim, axes=('embed', 'heads'), **kw)
        self.v = Dense(kv_dim, q_dim, axes=('embed', 'heads'), **kw)
        self.o = Dense(q_dim, q_dim, axes=('heads', 'embed'), **kw)

    def __call__(self, x, context, mask=None):
        """x (B, Sq, q_dim), context (B, Sk, kv_dim), mask broadcastable to (B, H, Sq, Sk)."""
        def heads(t):
            return t.reshape(t.shape[:-1] + (self.num_heads, -1))
        out = attention(heads(self.q(x)), heads(self.k(context)), heads(self.v(context)), mask,
                        implementation=self.attention_impl)
        return self.o(out.reshape(out.shape[:-2] + (-1,)))


class MLP(nnx.Module):
    """Two-layer GELU MLP."""

    def __init__(self, dim: int, hidden: int, *, dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.up = Dense(dim, hidden, axes=('embed', 'mlp'), **kw)
        self.down = Dense(hidden, dim, axes=('mlp', 'embed'), **kw)

    def __call__(self, x, dropout_rate: float = 0.0, dropout_rng=None):
        return self.down(dropout(jax.nn.gelu(self.up(x), approximate=False), dropout_rate, dropout_rng))


class SelfAttentionBlock(nnx.Module):
    """Pre-LN transformer block: x + attn(LN x); x + mlp(LN x). Keys masked by ``valid`` (B, S)."""

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: int = 4, dropout_rate: float = 0.0,
                 dtype=jnp.float32, param_dtype=jnp.float32, attention_impl=None, rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.dropout_rate = dropout_rate
        self.norm1 = LayerNorm(dim, **kw)
        self.attn = MultiHeadAttention(dim, dim, num_heads, attention_impl=attention_impl, **kw)
        self.norm2 = LayerNorm(dim, **kw)
        self.mlp = MLP(dim, mlp_ratio * dim, **kw)

    def __call__(self, x, valid, dropout_rng=None):
        r1, r2, r3 = split_rng(dropout_rng, 3)
        mask = valid.astype(bool)[:, None, None, :]
        h = self.norm1(x)
        x = x + dropout(self.attn(h, h, mask), self.dropout_rate, r1)
        return x + dropout(self.mlp(self.norm2(x), self.dropout_rate, r2), self.dropout_rate, r3)
