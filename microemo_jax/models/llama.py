"""LLaMA-family decoder (transformers' ``LlamaForCausalLM``, ``Qwen2ForCausalLM``, ``Qwen3ForCausalLM``): GQA,
RoPE (plain or scaled, ``models/rope.py``), RMSNorm, SwiGLU, tied or untied head, optional LoRA, and a
static-shape KV cache for generation. The Qwen families are config switches of this one module (q/k/v
biases; per-head q/k RMSNorm; ``head_dim`` apart from hidden/heads), see ``LlamaConfig``.

Padding is a mask, never a shift: positions default to ``cumsum(attention_mask) - 1`` so that masked
slots (left padding, empty utterance slots spliced into a prompt) do not move the positions of the
real tokens after them, and masked keys are never attended to. The KV cache keeps one validity bit per
slot for the same reason, so a padded prompt can be prefilled and then extended one token per call
under ``jax.jit`` with fixed shapes.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from microemo_jax.models import rope
from microemo_jax.models.layers import Dense, Embed, RMSNorm, attention, cache_attention, split_rng
from microemo_jax.models.lora import LoRAConfig, lora_config_for
from microemo_jax.models.stack import LayerStack

LORA_TARGETS = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj')
LLAMA3_ROPE_KEYS = rope.ROPE_TYPES['llama3'][0]


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    """Architecture of a LLaMA-family decoder; the Qwen families are the same module with a few switches.

    * ``attention_bias``: biases on q, k, v and o (LLaMA's ``attention_bias``, Qwen3's); ``qkv_bias``: biases on
      q, k and v only (Qwen2/2.5); ``mlp_bias``: biases in the MLP.
    * ``qk_norm``: an RMSNorm over each head's ``head_dim`` on q and k before RoPE (Qwen3). ``head_dim`` is its
      own field, not ``hidden_size / num_heads``.
    * ``rope_scaling``: None (plain RoPE) or the parameters of a scaled RoPE (``rope_type`` 'linear', 'dynamic',
      'yarn' or 'llama3' and its keys, see ``models/rope.py``), given as a mapping or pairs and stored as sorted
      pairs so the config stays hashable.
    * ``sliding_window``: the attention window of the checkpoint's sliding-window layers (``sliding_layers``;
      None: every layer attends to all earlier positions). Full attention equals windowed attention while a
      call holds at most ``sliding_window`` positions, so the model computes full attention and refuses a call
      over more (it does not implement the window itself).
    """
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: Any = None
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    qkv_bias: bool = False
    qk_norm: bool = False
    sliding_window: int | None = None
    sliding_layers: tuple[int, ...] = ()

    def __post_init__(self):
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for RoPE")
        if self.rope_scaling is not None:
            scaling = dict(self.rope_scaling)
            scaling.setdefault('rope_type', scaling.pop('type', 'llama3'))  # the LLaMA-3 dict of older configs
            object.__setattr__(self, 'rope_scaling', rope.check_rope_params(scaling))
        layers = tuple(sorted(int(i) for i in self.sliding_layers))
        object.__setattr__(self, 'sliding_layers', layers)
        if (self.sliding_window is None) != (not layers):
            raise ValueError(f"sliding_window {self.sliding_window} and sliding_layers {layers} go together")
        if self.sliding_window is not None and self.sliding_window < 1:
            raise ValueError(f"sliding_window must be >= 1, got {self.sliding_window}")

    @property
    def rope_params(self) -> dict | None:
        return None if self.rope_scaling is None else dict(self.rope_scaling)

    @property
    def q_bias(self) -> bool:
        """Whether q, k and v carry biases."""
        return self.attention_bias or self.qkv_bias


def rope_inv_freq(cfg: LlamaConfig) -> np.ndarray:
    """Inverse RoPE frequencies (head_dim/2,), float32, following transformers' operation order."""
    return rope.inv_freq(cfg.rope_theta, cfg.head_dim, cfg.rope_params)


def rope_tables(cfg: LlamaConfig, positions: jax.Array) -> tuple[jax.Array, jax.Array]:
    """cos/sin of shape (B, S, head_dim) in float32 for integer ``positions`` (B, S)."""
    return rope.tables(cfg.rope_theta, cfg.head_dim, cfg.rope_params, cfg.max_position_embeddings, positions)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate (B, S, H, D) by the (B, S, D) tables, halves layout (transformers' rotate_half)."""
    x32 = x.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
    return (x32 * cos[:, :, None, :] + rotated * sin[:, :, None, :]).astype(x.dtype)


@functools.partial(jax.tree_util.register_dataclass, data_fields=['k', 'v', 'valid', 'length'], meta_fields=[])
@dataclasses.dataclass
class KVCache:
    """Keys (after RoPE) and values of every layer, (num_layers, B, num_kv_heads, max_len, head_dim): head-major
    as transformers stores them, so a decode step's attention reads them in place
    (``layers.cache_attention``); ``valid`` (B, max_len) marks written, unmasked slots; ``length`` is the next
    slot to write."""
    k: jax.Array
    v: jax.Array
    valid: jax.Array
    length: jax.Array

    @property
    def max_len(self) -> int:
        return self.k.shape[3]


class LlamaAttention(nnx.Module):
    def __init__(self, cfg: LlamaConfig, *, dtype, param_dtype, lora, lora_targets, attention_impl, rngs):
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.attention_impl = attention_impl
        q_dim, kv_dim = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim

        def dense(name, i, o, axes, bias):
            return Dense(i, o, axes=axes, use_bias=bias, dtype=dtype, param_dtype=param_dtype,
                         lora=lora_config_for(name, lora, lora_targets), rngs=rngs)
        self.q_proj = dense('q_proj', cfg.hidden_size, q_dim, ('embed', 'heads'), cfg.q_bias)
        self.k_proj = dense('k_proj', cfg.hidden_size, kv_dim, ('embed', 'kv_heads'), cfg.q_bias)
        self.v_proj = dense('v_proj', cfg.hidden_size, kv_dim, ('embed', 'kv_heads'), cfg.q_bias)
        self.o_proj = dense('o_proj', q_dim, cfg.hidden_size, ('heads', 'embed'), cfg.attention_bias)
        if cfg.qk_norm:  # Qwen3: one RMSNorm over head_dim, shared by all heads, on q and k before RoPE
            self.q_norm = RMSNorm(cfg.head_dim, eps=cfg.rms_norm_eps, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
            self.k_norm = RMSNorm(cfg.head_dim, eps=cfg.rms_norm_eps, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        else:
            self.q_norm = self.k_norm = None

    def __call__(self, x, *, cos, sin, mask, cache_kv=None, cache_index=None, rngs=(None,) * 4):
        b, s, _ = x.shape
        q = self.q_proj(x, dropout_rng=rngs[0]).reshape(b, s, self.num_heads, self.head_dim)
        k = self.k_proj(x, dropout_rng=rngs[1]).reshape(b, s, self.num_kv_heads, self.head_dim)
        v = self.v_proj(x, dropout_rng=rngs[2]).reshape(b, s, self.num_kv_heads, self.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        new_kv = None
        if cache_kv is not None:
            ck, cv = cache_kv
            ck = jax.lax.dynamic_update_slice(ck, k.swapaxes(1, 2).astype(ck.dtype), (0, 0, cache_index, 0))
            cv = jax.lax.dynamic_update_slice(cv, v.swapaxes(1, 2).astype(cv.dtype), (0, 0, cache_index, 0))
            new_kv = (ck, cv)
            k, v = ck.astype(q.dtype), cv.astype(q.dtype)
            if self.attention_impl in (None, 'xla'):
                out = cache_attention(q, k, v, mask)
            else:
                out = attention(q, k.swapaxes(1, 2), v.swapaxes(1, 2), mask, implementation=self.attention_impl)
        else:
            out = attention(q, k, v, mask, implementation=self.attention_impl)
        return self.o_proj(out.reshape(b, s, -1), dropout_rng=rngs[3]), new_kv


class LlamaMLP(nnx.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: LlamaConfig, *, dtype, param_dtype, lora, lora_targets, rngs):
        def dense(name, i, o, axes):
            return Dense(i, o, axes=axes, use_bias=cfg.mlp_bias, dtype=dtype, param_dtype=param_dtype,
                         lora=lora_config_for(name, lora, lora_targets), rngs=rngs)
        self.gate_proj = dense('gate_proj', cfg.hidden_size, cfg.intermediate_size, ('embed', 'mlp'))
        self.up_proj = dense('up_proj', cfg.hidden_size, cfg.intermediate_size, ('embed', 'mlp'))
        self.down_proj = dense('down_proj', cfg.intermediate_size, cfg.hidden_size, ('mlp', 'embed'))

    def __call__(self, x, *, rngs=(None,) * 3):
        h = jax.nn.silu(self.gate_proj(x, dropout_rng=rngs[0])) * self.up_proj(x, dropout_rng=rngs[1])
        return self.down_proj(h, dropout_rng=rngs[2])


class LlamaBlock(nnx.Module):
    """Pre-norm decoder layer. ``xs`` = {'rng': key|None, 'k': cache keys|None, 'v': cache values|None}."""

    def __init__(self, cfg: LlamaConfig, *, dtype, param_dtype, lora, lora_targets, attention_impl, rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.input_layernorm = RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps, **kw)
        self.self_attn = LlamaAttention(cfg, lora=lora, lora_targets=lora_targets,
                                        attention_impl=attention_impl, **kw)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps, **kw)
        self.mlp = LlamaMLP(cfg, lora=lora, lora_targets=lora_targets, **kw)

    def __call__(self, x, xs, *, cos, sin, mask, cache_index=None):
        rngs = split_rng(xs['rng'], 7)
        cache_kv = None if xs['k'] is None else (xs['k'], xs['v'])
        h, new_kv = self.self_attn(self.input_layernorm(x), cos=cos, sin=sin, mask=mask, cache_kv=cache_kv,
                                   cache_index=cache_index, rngs=rngs[:4])
        x = x + h
        x = x + self.mlp(self.post_attention_layernorm(x), rngs=rngs[4:])
        return x, new_kv


class Llama(nnx.Module):
    """``LlamaForCausalLM``: token ids or embeddings -> float32 logits (and an updated KV cache)."""

    def __init__(self, cfg: LlamaConfig, *, dtype=jnp.float32, param_dtype=jnp.float32, scan: bool = False,
                 remat_policy: str = 'none', lora: LoRAConfig | None = None,
                 lora_targets=('q_proj', 'k_proj', 'v_proj', 'o_proj'), attention_impl: str | None = None,
                 rngs: nnx.Rngs):
        lora_targets = tuple(lora_targets)
        unknown = sorted(set(lora_targets) - set(LORA_TARGETS))
        if unknown:
            raise ValueError(f"unknown LoRA targets {unknown}; choose from {LORA_TARGETS}")
        self.cfg, self.dtype, self.lora_targets = cfg, dtype, lora_targets
        self.embed_tokens = Embed(cfg.vocab_size, cfg.hidden_size, axes=('vocab', 'embed'), dtype=dtype,
                                  param_dtype=param_dtype, rngs=rngs)
        self.layers = LayerStack(
            lambda r: LlamaBlock(cfg, dtype=dtype, param_dtype=param_dtype, lora=lora, lora_targets=lora_targets,
                                 attention_impl=attention_impl, rngs=r),
            cfg.num_layers, scan=scan, remat_policy=remat_policy, rngs=rngs)
        self.norm = RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.lm_head = None if cfg.tie_word_embeddings else Dense(
            cfg.hidden_size, cfg.vocab_size, axes=('embed', 'vocab'), use_bias=False, dtype=dtype,
            param_dtype=param_dtype, rngs=rngs)

    def embed(self, input_ids: jax.Array) -> jax.Array:
        """Token embeddings (B, S, hidden) in the compute dtype, for splicing other modalities in."""
        return self.embed_tokens(input_ids)

    def head_kernel(self) -> jax.Array:
        """The output head as a (hidden, vocab) matrix (the embedding table transposed when tied)."""
        if self.lm_head is None:
            return self.embed_tokens.embedding[...].T
        return self.lm_head.kernel[...]

    def init_cache(self, batch: int, max_len: int, dtype=None) -> KVCache:
        """An empty cache for ``batch`` rows of up to ``max_len`` tokens (prompt + generated)."""
        c = self.cfg
        shape = (c.num_layers, batch, c.num_kv_heads, max_len, c.head_dim)
        dtype = dtype or self.dtype
        return KVCache(k=jnp.zeros(shape, dtype), v=jnp.zeros(shape, dtype),
                       valid=jnp.zeros((batch, max_len), bool), length=jnp.zeros((), jnp.int32))

    def __call__(self, input_ids: jax.Array | None = None, *, inputs_embeds: jax.Array | None = None,
                 attention_mask: jax.Array | None = None, positions: jax.Array | None = None,
                 cache: KVCache | None = None, dropout_rng: jax.Array | None = None,
                 logits_at: jax.Array | None = None, hidden_only: bool = False):
        """``logits_at`` (B,) or (B, K) int: compute the logits only at these slots, (B, 1|K, vocab)
        (generation needs only the last prompt token's, and the head is the largest matmul).
        ``hidden_only`` (no cache): the final normed hidden states (B, S, hidden) instead of logits, for a loss
        fused with the head (``training.losses.chunked_next_token_loss`` with ``head_kernel()``)."""
        x = self._input_embeddings(input_ids, inputs_embeds)
        b, s = x.shape[:2]
        valid = self._check_bs('attention_mask', attention_mask, b, s)
        valid = jnp.ones((b, s), bool) if valid is None else valid.astype(bool)
        chunk_pos = jnp.maximum(jnp.cumsum(valid.astype(jnp.int32), axis=-1) - 1, 0)
        xs = {'rng': None if dropout_rng is None else jax.random.split(dropout_rng, self.cfg.num_layers),
              'k': None, 'v': None}
        if cache is None:
            cache_index = None
            causal = jnp.tril(jnp.ones((s, s), bool))
            mask = causal[None, None] & valid[:, None, None, :]
        else:
            self._check_cache(cache, b, s)
            cache_index = cache.length
            chunk_pos = chunk_pos + cache.valid.sum(-1, dtype=jnp.int32)[:, None]
            key_valid = jax.lax.dynamic_update_slice(cache.valid, valid, (0, cache_index))
            causal = jnp.arange(cache.max_len)[None, :] <= (cache_index + jnp.arange(s))[:, None]
            mask = causal[None, None] & key_valid[:, None, None, :]
            xs['k'], xs['v'] = cache.k, cache.v
        self._check_window(s if cache is None else cache.max_len)
        if positions is None:
            positions = chunk_pos
        else:
            positions = jnp.broadcast_to(self._check_bs('positions', positions, b, s, allow_1d=True), (b, s))
        cos, sin = rope_tables(self.cfg, positions)
        x, new_kv = self.layers(x, xs, cos=cos, sin=sin, mask=mask, cache_index=cache_index)
        if logits_at is not None:
            x = jnp.take_along_axis(x, jnp.asarray(logits_at, jnp.int32).reshape(b, -1)[..., None], axis=1)
        x = self.norm(x)
        if hidden_only and cache is None:
            return x
        logits = self.embed_tokens.attend(x) if self.lm_head is None else self.lm_head(x)
        logits = logits.astype(jnp.float32)
        if cache is None:
            return logits
        return logits, KVCache(k=new_kv[0], v=new_kv[1], valid=key_valid, length=cache_index + s)

    def _input_embeddings(self, input_ids, inputs_embeds) -> jax.Array:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Llama: pass exactly one of input_ids (B, S) or inputs_embeds (B, S, hidden)")
        if input_ids is not None:
            if input_ids.ndim != 2:
                raise ValueError(f"Llama: input_ids must be (batch, seq), got shape {tuple(input_ids.shape)}")
            if not jnp.issubdtype(input_ids.dtype, jnp.integer):
                raise ValueError(f"Llama: input_ids must be integers, got {input_ids.dtype}")
            return self.embed(input_ids)
        if inputs_embeds.ndim != 3 or inputs_embeds.shape[-1] != self.cfg.hidden_size:
            raise ValueError(f"Llama: inputs_embeds must be (batch, seq, {self.cfg.hidden_size}), "
                             f"got shape {tuple(inputs_embeds.shape)}")
        return inputs_embeds.astype(self.dtype)

    @staticmethod
    def _check_bs(what, arr, b, s, allow_1d=False):
        if arr is None:
            return None
        ok = tuple(arr.shape) == (b, s) or (allow_1d and tuple(arr.shape) == (s,))
        if not ok:
            raise ValueError(f"Llama: {what} must have shape ({b}, {s}) like the input, got {tuple(arr.shape)}")
        return arr

    def _check_window(self, key_slots: int) -> None:
        """Refuse a call whose attention span could exceed the sliding window (see ``LlamaConfig``)."""
        window = self.cfg.sliding_window
        if window is not None and key_slots > window:
            raise ValueError(
                f"Llama: this call attends over {key_slots} positions, but the checkpoint's config.json sets "
                f"use_sliding_window: true with sliding_window {window} on layers {list(self.cfg.sliding_layers)}; "
                f"sliding-window attention is not implemented, so inputs (prompt + generated tokens) are limited to "
                f"{window} positions")

    def _check_cache(self, cache: KVCache, b: int, s: int) -> None:
        c = self.cfg
        want = (c.num_layers, b, c.num_kv_heads, cache.max_len, c.head_dim)
        if tuple(cache.k.shape) != want or tuple(cache.v.shape) != want:
            raise ValueError(f"Llama: cache k/v have shape {tuple(cache.k.shape)}, expected {want} "
                             f"(use model.init_cache(batch={b}, max_len=...))")
        if s > cache.max_len:
            raise ValueError(f"Llama: {s} new tokens do not fit a cache of max_len {cache.max_len}")
        try:  # eager calls can check the fill level; under jit a full cache would overwrite the last slots
            length = int(cache.length)
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerIntegerConversionError):
            return
        if length + s > cache.max_len:
            raise ValueError(f"Llama: cache holds {length} of {cache.max_len} slots; {s} more do not fit")
