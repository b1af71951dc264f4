"""Rotary position embeddings of the LLaMA/Qwen decoders: the plain form and the scalings transformers applies
to them ('linear', 'dynamic' NTK, 'yarn', 'llama3').

Written by hand (no JAX library implements transformers' RoPE variants) and kept in transformers' operation
order and float32 arithmetic (``modeling_rope_utils``), so that the tables, and hence the logits, agree with
it to float32 rounding. The parameters are a mapping ``{'rope_type': ..., 'factor': ..., ...}`` with the keys
transformers' ``rope_parameters`` uses (``rope_theta`` and the head size come from the model config).
"""
from __future__ import annotations

import math
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

# rope_type -> (required keys, optional keys) of its parameters, as transformers validates them
ROPE_TYPES = {
    'linear': (('factor',), ()),
    'dynamic': (('factor',), ()),
    'yarn': (('factor', 'original_max_position_embeddings'),
             ('attention_factor', 'beta_fast', 'beta_slow', 'mscale', 'mscale_all_dim', 'truncate')),
    'llama3': (('factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'), ()),
}
_DEFAULTS = {'beta_fast': 32, 'beta_slow': 1, 'truncate': True}


def check_rope_params(params: Mapping) -> tuple[tuple[str, object], ...]:
    """The scaling parameters as sorted (key, value) pairs (hashable, for a frozen config), checked: a known
    ``rope_type`` (legacy spelling ``type``) with its required keys. Unknown extra keys are dropped."""
    params = dict(params)
    rope_type = params.pop('rope_type', params.pop('type', None))
    if rope_type not in ROPE_TYPES:
        raise ValueError(f"rope_scaling rope_type {rope_type!r} is not supported (None = plain RoPE, or one of "
                         f"{sorted(ROPE_TYPES)})")
    required, optional = ROPE_TYPES[rope_type]
    missing = [k for k in required if params.get(k) is None]
    if missing:
        raise ValueError(f"{rope_type} rope_scaling lacks {missing}")
    kept = {k: params[k] for k in required + optional if params.get(k) is not None
            and params[k] != _DEFAULTS.get(k)}  # transformers' defaults: one config, one spelling
    return tuple(sorted([('rope_type', rope_type)] + list(kept.items())))


def _default_inv_freq(theta: float, dim: int) -> np.ndarray:
    exponent = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim)
    return (np.float32(1.0) / (np.float32(theta) ** exponent)).astype(np.float32)


def _llama3(inv_freq: np.ndarray, p: Mapping) -> np.ndarray:
    factor, low, high = float(p['factor']), float(p['low_freq_factor']), float(p['high_freq_factor'])
    old_len = float(p['original_max_position_embeddings'])
    low_freq_wavelen, high_freq_wavelen = old_len / low, old_len / high
    wavelen = 2 * np.pi / inv_freq  # python scalars stay weak (NEP 50): float32 throughout, as in torch
    scaled = np.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return np.where(medium, smoothed, scaled).astype(np.float32)


def _yarn(theta: float, dim: int, p: Mapping) -> np.ndarray:
    factor, original = float(p['factor']), float(p['original_max_position_embeddings'])
    beta_fast, beta_slow = p.get('beta_fast') or 32, p.get('beta_slow') or 1

    def correction_dim(rotations):
        return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(theta))
    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if p.get('truncate', True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # transformers' guard against a zero-width ramp
    pos_freqs = np.float32(theta) ** (np.arange(0, dim, 2).astype(np.float32) / np.float32(dim))
    extrapolation = np.float32(1.0) / pos_freqs
    interpolation = np.float32(1.0) / (np.float32(factor) * pos_freqs)
    ramp = np.clip((np.arange(dim // 2, dtype=np.float32) - low) / (high - low), 0, 1).astype(np.float32)
    keep = np.float32(1) - ramp
    return (interpolation * (1 - keep) + extrapolation * keep).astype(np.float32)


def _yarn_attention_factor(p: Mapping) -> float:
    if p.get('attention_factor') is not None:
        return float(p['attention_factor'])
    factor, mscale, mscale_all_dim = float(p['factor']), p.get('mscale'), p.get('mscale_all_dim')

    def get_mscale(scale, m=1.0):
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0
    if mscale and mscale_all_dim:
        return float(get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim))
    return get_mscale(factor)


def inv_freq(theta: float, dim: int, params: Mapping | None) -> np.ndarray:
    """Inverse frequencies (dim/2,) float32 at the model's trained length ('dynamic' rescales them per call
    for longer inputs, in :func:`tables`)."""
    base = _default_inv_freq(theta, dim)
    rope_type = None if params is None else params['rope_type']
    if rope_type in (None, 'dynamic'):
        return base
    if rope_type == 'linear':
        return (base / np.float32(params['factor'])).astype(np.float32)
    if rope_type == 'llama3':
        return _llama3(base, params)
    return _yarn(theta, dim, params)


def attention_scaling(params: Mapping | None) -> float:
    """The factor transformers multiplies cos and sin by (1 except for 'yarn')."""
    return _yarn_attention_factor(params) if params is not None and params['rope_type'] == 'yarn' else 1.0


def tables(theta: float, dim: int, params: Mapping | None, max_position_embeddings: int,
           positions: jax.Array) -> tuple[jax.Array, jax.Array]:
    """cos/sin (B, S, dim) float32 for integer ``positions`` (B, S).

    'dynamic' (NTK) follows transformers' per-call rule: past ``max_position_embeddings`` the base grows with
    the longest position of the call (max over the batch), ``theta * (factor * L / max_pos - (factor - 1)) **
    (dim / (dim - 2))``; keys already in a KV cache keep the rotation they were written with, as there.
    (transformers also keeps the largest length seen across calls on the module; here each call starts afresh.)
    """
    freqs = jnp.asarray(inv_freq(theta, dim, params))
    if params is not None and params['rope_type'] == 'dynamic':
        factor = float(params['factor'])
        seq_len = jnp.maximum(jnp.max(positions) + 1, max_position_embeddings).astype(jnp.float32)
        base = theta * ((factor * seq_len / max_position_embeddings) - (factor - 1)) ** (dim / (dim - 2))
        exponent = jnp.arange(0, dim, 2).astype(jnp.float32) / dim
        scaled = 1.0 / (base.astype(jnp.float32) ** exponent)
        freqs = jnp.where(jnp.max(positions) + 1 > max_position_embeddings, scaled, freqs)
    angles = positions.astype(jnp.float32)[..., None] * freqs
    emb = jnp.concatenate([angles, angles], axis=-1)
    scale = attention_scaling(params)
    if scale == 1.0:
        return jnp.cos(emb), jnp.sin(emb)
    return jnp.cos(emb) * scale, jnp.sin(emb) * scale
