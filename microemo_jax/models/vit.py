"""EVA / BLIP-2 vision transformer in the layout of transformers' ``Blip2VisionModel``.

Pre-LN blocks (LN -> attention -> residual, LN -> GELU MLP -> residual), a class token, learned
absolute position embeddings and a final ``post_layernorm`` that transformers applies to
``last_hidden_state`` (it is what the Q-Former reads, LAVIS' ``ln_vision``).

Queries, keys and values are separate projections; keys carry no bias. HF stores a fused
``qkv.bias`` whose key third is a parameter too, but a key bias adds ``q . b_k`` to every logit of
a query row, which softmax cancels, so dropping it changes nothing (the fixtures randomise it to
prove it).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from microemo_jax.models.layers import ACTIVATIONS, Dense, Dtype, LayerNorm, activation, attention, dropout, param
from microemo_jax.models.stack import LayerStack


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    patch_size: int
    image_size: int
    num_channels: int = 3
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True
    hidden_act: str = 'gelu'
    attention_dropout: float = 0.0

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"VisionConfig: hidden_size {self.hidden_size} is not divisible by "
                             f"num_heads {self.num_heads}")
        if self.image_size % self.patch_size:
            raise ValueError(f"VisionConfig: image_size {self.image_size} is not a multiple of patch_size "
                             f"{self.patch_size} (border pixels would be silently dropped)")
        activation(self.hidden_act, 'VisionConfig: hidden_act')

    @property
    def grid(self) -> int:
        """Patches per image side."""
        return self.image_size // self.patch_size

    @property
    def num_positions(self) -> int:
        """Class token + patches."""
        return 1 + self.grid ** 2

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


class PatchEmbedding(nnx.Module):
    """Conv with stride = kernel = patch, written as a Dense over flattened (C, P, P) patches."""

    def __init__(self, cfg: VisionConfig, *, dtype: Dtype, param_dtype: Dtype, rngs: nnx.Rngs):
        self.cfg, self.dtype = cfg, dtype
        p = cfg.patch_size
        self.patch = Dense(cfg.num_channels * p * p, cfg.hidden_size, axes=('patch', 'embed'), dtype=dtype,
                           param_dtype=param_dtype, rngs=rngs)
        init = nnx.initializers.normal(stddev=0.02)
        self.class_embedding = param(rngs, init, (cfg.hidden_size,), ('embed',), param_dtype)
        self.position_embedding = param(rngs, init, (cfg.num_positions, cfg.hidden_size), ('pos', 'embed'),
                                        param_dtype)

    def __call__(self, pixel_values: jax.Array) -> jax.Array:
        b, c, _, _ = pixel_values.shape
        g, p = self.cfg.grid, self.cfg.patch_size
        # (B, C, g*P, g*P) -> (B, g, g, C, P, P): row-major patch order, as conv(...).flatten(2)
        x = pixel_values.reshape(b, c, g, p, g, p).transpose(0, 2, 4, 1, 3, 5).reshape(b, g * g, c * p * p)
        x = self.patch(x)
        cls = jnp.broadcast_to(self.class_embedding[...].astype(self.dtype), (b, 1, self.cfg.hidden_size))
        x = jnp.concatenate([cls, x], axis=1)
        return x + self.position_embedding[...].astype(self.dtype)


class VisionAttention(nnx.Module):
    """Bidirectional multi-head self-attention with optional dropout on the attention weights."""

    def __init__(self, cfg: VisionConfig, *, dtype: Dtype, param_dtype: Dtype, attention_impl: str | None,
                 rngs: nnx.Rngs):
        self.cfg, self.dtype, self.attention_impl = cfg, dtype, attention_impl
        e = cfg.hidden_size
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.query = Dense(e, e, axes=('embed', 'heads'), use_bias=cfg.qkv_bias, **kw)
        self.key = Dense(e, e, axes=('embed', 'heads'), use_bias=False, **kw)
        self.value = Dense(e, e, axes=('embed', 'heads'), use_bias=cfg.qkv_bias, **kw)
        self.projection = Dense(e, e, axes=('heads', 'embed'), **kw)

    def __call__(self, x: jax.Array, *, dropout_rng: jax.Array | None = None) -> jax.Array:
        b, s, _ = x.shape
        h, d = self.cfg.num_heads, self.cfg.head_dim
        q, k, v = (proj(x).reshape(b, s, h, d) for proj in (self.query, self.key, self.value))
        if dropout_rng is not None and self.cfg.attention_dropout > 0.0:
            logits = jnp.einsum('bqhd,bkhd->bhqk', q, k).astype(jnp.float32) / math.sqrt(d)
            probs = dropout(jax.nn.softmax(logits, axis=-1), self.cfg.attention_dropout, dropout_rng)
            out = jnp.einsum('bhqk,bkhd->bqhd', probs.astype(v.dtype), v)
        else:
            out = attention(q, k, v, None, implementation=self.attention_impl)
        return self.projection(out.reshape(b, s, h * d))


class VisionMLP(nnx.Module):
    def __init__(self, cfg: VisionConfig, *, dtype: Dtype, param_dtype: Dtype, rngs: nnx.Rngs):
        self.hidden_act = cfg.hidden_act
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.fc1 = Dense(cfg.hidden_size, cfg.intermediate_size, axes=('embed', 'mlp'), **kw)
        self.fc2 = Dense(cfg.intermediate_size, cfg.hidden_size, axes=('mlp', 'embed'), **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(ACTIVATIONS[self.hidden_act](self.fc1(x)))


class VisionBlock(nnx.Module):
    """One pre-LN encoder layer; ``xs`` is this layer's dropout key (or None)."""

    def __init__(self, cfg: VisionConfig, *, dtype: Dtype, param_dtype: Dtype, attention_impl: str | None,
                 rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.layer_norm1 = LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps, **kw)
        self.self_attn = VisionAttention(cfg, attention_impl=attention_impl, **kw)
        self.layer_norm2 = LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps, **kw)
        self.mlp = VisionMLP(cfg, **kw)

    def __call__(self, x: jax.Array, xs: jax.Array | None) -> tuple[jax.Array, None]:
        x = x + self.self_attn(self.layer_norm1(x), dropout_rng=xs)
        x = x + self.mlp(self.layer_norm2(x))
        return x, None


class VisionTransformer(nnx.Module):
    """pixel_values (B, C, H, W) -> ``Blip2VisionModel.last_hidden_state`` (B, 1 + patches, hidden)."""

    def __init__(self, cfg: VisionConfig, *, dtype: Dtype = jnp.float32, param_dtype: Dtype = jnp.float32,
                 scan: bool = False, remat_policy: str = 'none', attention_impl: str | None = None,
                 rngs: nnx.Rngs):
        self.cfg, self.dtype = cfg, dtype
        kw = dict(dtype=dtype, param_dtype=param_dtype)
        self.embeddings = PatchEmbedding(cfg, rngs=rngs, **kw)
        self.encoder = LayerStack(lambda r: VisionBlock(cfg, attention_impl=attention_impl, rngs=r, **kw),
                                  cfg.num_layers, scan=scan, remat_policy=remat_policy, rngs=rngs)
        self.post_layernorm = LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps, rngs=rngs, **kw)

    def __call__(self, pixel_values: jax.Array, *, dropout_rng: jax.Array | None = None) -> jax.Array:
        self._check(pixel_values)
        x = self.embeddings(pixel_values.astype(self.dtype))
        keys = None
        if dropout_rng is not None and self.cfg.attention_dropout > 0.0:
            keys = jax.random.split(dropout_rng, self.cfg.num_layers)  # one key per layer
        x, _ = self.encoder(x, keys)
        return self.post_layernorm(x)

    def _check(self, pixel_values) -> None:
        cfg = self.cfg
        want = f"(batch, {cfg.num_channels}, {cfg.image_size}, {cfg.image_size})"
        shape = tuple(pixel_values.shape)
        if len(shape) != 4:
            raise ValueError(f"VisionTransformer: pixel_values must have rank 4 {want}, got shape {shape}")
        if shape[1] != cfg.num_channels:
            hint = (" (it looks channels-last: transpose to (B, C, H, W))"
                    if shape[-1] == cfg.num_channels else "")
            raise ValueError(f"VisionTransformer: pixel_values has {shape[1]} channels in dim 1, expected "
                             f"{cfg.num_channels} {want}; got shape {shape}{hint}")
        if shape[2:] != (cfg.image_size, cfg.image_size):
            raise ValueError(f"VisionTransformer: images are {shape[2]}x{shape[3]} but the position embeddings "
                             f"were learned for {cfg.image_size}x{cfg.image_size} ({cfg.grid}x{cfg.grid} patches "
                             f"of {cfg.patch_size} px); resize the images to {cfg.image_size}x{cfg.image_size} "
                             f"(position-embedding interpolation is not supported)")
