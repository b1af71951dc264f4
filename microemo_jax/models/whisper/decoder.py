"""Whisper text decoder (transformers' ``WhisperDecoder`` + ``proj_out`` layout) and the encoder-decoder.

The decoder: token embeddings plus a learned position table (``scale_embedding`` is kept from config.json
but not used: transformers defines the scale and never applies it), pre-LN layers of causal self-attention,
cross-attention over the encoder output and a GELU MLP (the attention is the encoder's
``whisper.WhisperAttention``: k_proj without bias), a final LayerNorm, and logits from the tied embedding
table (or ``proj_out`` when the checkpoint unties it). ``WhisperSpeechModel`` holds the encoder
(``models/whisper/encoder.py``) and this decoder, as ``WhisperForConditionalGeneration`` does; decoding with it
(greedy, timestamped) is ``models/whisper/transcribe.py``.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from microemo_jax.models.layers import Dense, Embed, LayerNorm, param
from microemo_jax.models.stack import LayerStack
from microemo_jax.models.whisper.encoder import (
    WhisperAttention,
    WhisperEncoder,
    WhisperEncoderConfig,
    WhisperLayer,
    WhisperSizes,
)


@dataclasses.dataclass(frozen=True)
class WhisperDecoderConfig(WhisperSizes):
    """Decoder part of a HF ``WhisperConfig``."""
    heads_field: ClassVar[str] = 'decoder_attention_heads'
    vocab_size: int = 51865
    decoder_layers: int = 4
    decoder_attention_heads: int = 6
    decoder_ffn_dim: int = 1536
    max_target_positions: int = 448
    tie_word_embeddings: bool = True

    @property
    def head_dim(self) -> int:
        return self.d_model // self.decoder_attention_heads


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class DecoderCache:
    """Per layer, the self-attention (keys, values) of the tokens so far, (layers, B, max_len, heads,
    head_dim) each, and the cross-attention (keys, values) of the encoder output, (layers, B, T_enc, heads,
    head_dim) each; ``length`` is the next self-attention slot to write."""
    self_kv: tuple[jax.Array, jax.Array]
    cross_kv: tuple[jax.Array, jax.Array]
    length: jax.Array


class WhisperDecoderLayer(WhisperLayer):
    """x + self_attn(LN(x)); x + encoder_attn(LN(x), encoder); x + fc2(act(fc1(LN(x)))).

    ``xs`` = (self_k, self_v, cross_k, cross_v) of this layer, or None without a cache; returns the
    updated tuple (the cross keys/values computed from ``encoder_hidden_states`` when it is given)."""

    def __init__(self, cfg: WhisperDecoderConfig, *, dtype, param_dtype, attention_impl, rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, attention_impl=attention_impl, rngs=rngs)
        super().__init__(cfg, cfg.decoder_attention_heads, cfg.decoder_ffn_dim, **kw)
        self.encoder_attn_layer_norm = LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, dtype=dtype,
                                                 param_dtype=param_dtype, rngs=rngs)
        self.encoder_attn = WhisperAttention(cfg.d_model, cfg.decoder_attention_heads, **kw)

    def __call__(self, x, xs, *, mask, cache_index, encoder_hidden_states):
        h = self.self_attn_layer_norm(x)
        k, v = self.self_attn.kv(h)
        if xs is not None:
            sk, sv, ck, cv = xs
            k = jax.lax.dynamic_update_slice(sk, k.astype(sk.dtype), (0, cache_index, 0, 0))
            v = jax.lax.dynamic_update_slice(sv, v.astype(sv.dtype), (0, cache_index, 0, 0))
        x = x + self.self_attn(h, k, v, mask)
        if encoder_hidden_states is not None:
            ck, cv = self.encoder_attn.kv(encoder_hidden_states)
            if xs is not None:
                ck, cv = ck.astype(xs[2].dtype), cv.astype(xs[3].dtype)
        x = x + self.encoder_attn(self.encoder_attn_layer_norm(x), ck, cv, None)
        x = x + self.fc2(self.mlp_hidden(x))
        return x, (None if xs is None else (k, v, ck, cv))


class WhisperDecoder(nnx.Module):
    """Token ids (B, S) + encoder output (B, T_enc, d) -> float32 logits (B, S, vocab) (and the updated cache)."""

    def __init__(self, cfg: WhisperDecoderConfig, *, dtype=jnp.float32, param_dtype=jnp.float32, scan: bool = False,
                 remat_policy: str = 'none', attention_impl: str | None = None, rngs: nnx.Rngs):
        self.cfg, self.dtype = cfg, dtype
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.embed_tokens = Embed(cfg.vocab_size, cfg.d_model, axes=('vocab', 'embed'), **kw)
        self.embed_positions = param(rngs, nnx.initializers.normal(0.02), (cfg.max_target_positions, cfg.d_model),
                                     ('pos', 'embed'), param_dtype)
        self.layers = LayerStack(
            lambda r: WhisperDecoderLayer(cfg, dtype=dtype, param_dtype=param_dtype, attention_impl=attention_impl,
                                          rngs=r),
            cfg.decoder_layers, scan=scan, remat_policy=remat_policy, rngs=rngs)
        self.layer_norm = LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, **kw)
        self.proj_out = None if cfg.tie_word_embeddings else Dense(
            cfg.d_model, cfg.vocab_size, axes=('embed', 'vocab'), use_bias=False, **kw)

    def init_cache(self, batch: int, max_len: int, encoder_len: int, dtype=None) -> DecoderCache:
        c = self.cfg
        if max_len > c.max_target_positions:
            raise ValueError(f"WhisperDecoder: a cache of {max_len} tokens exceeds max_target_positions="
                             f"{c.max_target_positions}")
        dtype = dtype or self.dtype
        z = lambda n: jnp.zeros((c.decoder_layers, batch, n, c.decoder_attention_heads, c.head_dim), dtype)
        return DecoderCache((z(max_len), z(max_len)), (z(encoder_len), z(encoder_len)), jnp.zeros((), jnp.int32))

    def __call__(self, input_ids: jax.Array, encoder_hidden_states: jax.Array | None = None, *,
                 cache: DecoderCache | None = None, logits_at: jax.Array | None = None):
        """Without ``cache``: teacher-forced logits over the whole sequence (``encoder_hidden_states`` needed).
        With ``cache``: the tokens are written at ``cache.length``; ``encoder_hidden_states`` given (the
        prefill) fills the cross-attention cache, else the cached one is used. ``logits_at`` (B,) picks
        one position per row (the head is the largest matmul). Returns logits, or (logits, cache)."""
        if input_ids.ndim != 2 or not jnp.issubdtype(input_ids.dtype, jnp.integer):
            raise ValueError(f"WhisperDecoder: input_ids must be integers of shape (batch, seq), got "
                             f"{input_ids.dtype} {tuple(input_ids.shape)}")
        if cache is None and encoder_hidden_states is None:
            raise ValueError("WhisperDecoder: encoder_hidden_states is needed without a cache")
        c = self.cfg
        b, s = input_ids.shape
        start = jnp.int32(0) if cache is None else cache.length
        if cache is None and s > c.max_target_positions:
            raise ValueError(f"WhisperDecoder: {s} tokens exceed max_target_positions={c.max_target_positions}")
        positions = start + jnp.arange(s)
        x = self.embed_tokens(input_ids)  # no sqrt(d_model) scale even with scale_embedding (transformers' behaviour)
        x = x + jnp.take(self.embed_positions[...], positions, axis=0).astype(self.dtype)[None]
        if cache is None:
            mask, xs = jnp.tril(jnp.ones((s, s), bool))[None, None], None
        else:
            keys = jnp.arange(cache.self_kv[0].shape[2])
            mask = (keys[None, :] <= positions[:, None])[None, None]
            xs = (*cache.self_kv, *cache.cross_kv)
        enc = None if encoder_hidden_states is None else encoder_hidden_states.astype(self.dtype)
        x, new = self.layers(x, xs, mask=mask, cache_index=start, encoder_hidden_states=enc)
        if logits_at is not None:
            x = jnp.take_along_axis(x, jnp.asarray(logits_at, jnp.int32).reshape(b, 1, 1), axis=1)
        x = self.layer_norm(x)
        logits = (self.embed_tokens.attend(x) if self.proj_out is None else self.proj_out(x)).astype(jnp.float32)
        if cache is None:
            return logits
        return logits, DecoderCache(new[:2], new[2:], length=start + s)


class WhisperSpeechModel(nnx.Module):
    """``WhisperForConditionalGeneration``: the encoder and the decoder."""

    def __init__(self, encoder_cfg: WhisperEncoderConfig, decoder_cfg: WhisperDecoderConfig, *, dtype=jnp.float32,
                 param_dtype=jnp.float32, scan: bool = False, attention_impl: str | None = None, rngs: nnx.Rngs):
        if encoder_cfg.d_model != decoder_cfg.d_model:
            raise ValueError(f"Whisper: encoder d_model {encoder_cfg.d_model} != decoder d_model {decoder_cfg.d_model}")
        kw = dict(dtype=dtype, param_dtype=param_dtype, scan=scan, attention_impl=attention_impl, rngs=rngs)
        self.encoder = WhisperEncoder(encoder_cfg, **kw)
        self.decoder = WhisperDecoder(decoder_cfg, **kw)

    @property
    def window_frames(self) -> int:
        """Mel frames of one input window (3000 = 30 s for the released checkpoints)."""
        return self.encoder.cfg.max_mel_frames

    def __call__(self, input_features: jax.Array, decoder_input_ids: jax.Array) -> jax.Array:
        return self.decoder(decoder_input_ids, self.encoder(input_features))


