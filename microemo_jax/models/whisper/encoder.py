"""Whisper audio encoder (transformers' ``WhisperEncoder`` layout): log-mel -> frame features.

Two conv1d layers (kernel 3, padding 1; the second with stride 2, halving the frame rate) with GELU,
a position table, pre-LN transformer layers (k_proj has no bias) and a final LayerNorm.

Differences from transformers, both because emotion clips are short and batched (``pad_to_window`` gives
transformers' exact behaviour instead: a clip padded to the full window as the feature extractor pads it,
run without a mask):
* any ``T_mel <= 2 * max_source_positions`` is accepted (transformers insists on exactly that many,
  i.e. 30 s padded); the first ``ceil(T_mel / 2)`` positions of the table are used. With
  ``T_mel == 2 * max_source_positions`` the output equals transformers'.
* an optional ``attention_mask`` marks the valid part of each clip in a padded batch. transformers
  ignores its mask argument (Whisper attends over the padding); here padded frames are zeroed before
  each conv (so the conv at a clip's end sees zeros, as if the clip ended there), padded keys are
  masked, and padded output positions are set to 0. A clip's valid outputs then do not depend on
  what the padding holds.

The convolutions are written as im2col + ``Dense`` so the kernels carry ('patch', 'embed') axes like
the other towers' patch embeddings: kernel row ``tap * C_in + c`` is torch's ``weight[:, c, tap]``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from microemo_jax.models.layers import (
    ACTIVATIONS,
    Dense,
    LayerNorm,
    activation,
    attention,
    dropout,
    key_mask,
    param,
    split_rng,
)
from microemo_jax.models.stack import LayerStack

CONV_KERNEL = 3


@dataclasses.dataclass(frozen=True)
class WhisperSizes:
    """The fields of a HF ``WhisperConfig`` that its encoder and decoder parts share, and their checks:
    d_model splits into the part's heads (the field ``heads_field`` names), the activation is known."""
    heads_field: ClassVar[str] = ''
    d_model: int = 384
    activation_function: str = 'gelu'
    layer_norm_eps: float = 1e-5
    scale_embedding: bool = False

    def __post_init__(self):
        where, heads = type(self).__name__, getattr(self, self.heads_field)
        if self.d_model % heads:
            raise ValueError(f"{where}: d_model {self.d_model} is not divisible by {self.heads_field} {heads}")
        activation(self.activation_function, f'{where}: activation_function')


@dataclasses.dataclass(frozen=True)
class WhisperEncoderConfig(WhisperSizes):
    """Encoder part of a HF ``WhisperConfig``.

    ``scale_embedding`` is kept for fidelity with config.json, but transformers' encoder never applies
    it (only the decoder scales its token embeddings), so neither do we. ``dropout`` (after the position
    add and each residual branch) and ``activation_dropout`` (inside the FFN) only act when a
    ``dropout_rng`` is given; attention-probability dropout and LayerDrop are not implemented (the
    encoder is frozen in MicroEmo and Whisper checkpoints set them to 0).
    """
    heads_field: ClassVar[str] = 'encoder_attention_heads'
    num_mel_bins: int = 80
    encoder_layers: int = 4
    encoder_attention_heads: int = 6
    encoder_ffn_dim: int = 1536
    max_source_positions: int = 1500
    dropout: float = 0.0
    activation_dropout: float = 0.0

    @property
    def max_mel_frames(self) -> int:
        return 2 * self.max_source_positions


def output_length(num_mel_frames: int) -> int:
    """Encoder positions produced from ``num_mel_frames`` frames (the stride-2 conv): ceil(T / 2)."""
    return (num_mel_frames - 1) // 2 + 1


def pad_to_window(mel: jax.Array, frame_valid: jax.Array, total_frames: int) -> jax.Array:
    """Fill a batch of short clips' log-mel out to ``total_frames`` as ``WhisperFeatureExtractor`` pads a clip.

    mel (B, bins, T) with ``frame_valid`` (B, T) marking each clip's frames -> (B, bins, total_frames). The
    extractor appends zeros to the waveform (to 30 s); their log10 power is the 1e-10 floor (-10), which its
    clamp lifts to (max - 8), so after (x + 4) / 4 every padded frame holds max(M - 2, -1.5), with M the
    clip's largest normalised value. Frames not marked valid (whatever the batch holds there) get that
    value; a clip with no valid frame is digital silence (-1.5). The frames right after a clip's end carry
    the tail of its last STFT windows in the extractor's output, so marked frames must include those to
    match it exactly.
    """
    b, bins, t = mel.shape
    if t > total_frames:
        raise ValueError(f"pad_to_window: {t} mel frames exceed the encoder window of {total_frames}")
    valid = frame_valid.astype(bool)[:, None, :]
    top = jnp.max(jnp.where(valid, mel, -jnp.inf), axis=(1, 2))
    floor = jnp.where(jnp.isfinite(top), jnp.maximum(top - 2.0, -1.5), -1.5).astype(mel.dtype)[:, None, None]
    x = jnp.where(valid, mel, floor)
    return jnp.concatenate([x, jnp.broadcast_to(floor, (b, bins, total_frames - t))], axis=2)


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> np.ndarray:
    """Whisper's fixed position table ([sin | cos] halves), the value its checkpoints store."""
    log_increment = math.log(max_timescale) / (channels // 2 - 1)
    inv = np.exp(-log_increment * np.arange(channels // 2))
    t = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def _im2col(x: jax.Array, stride: int) -> jax.Array:
    """(B, T, C) -> (B, ceil(T / stride), KERNEL * C): the taps of a kernel-3, padding-1 conv."""
    t_out = (x.shape[1] - 1) // stride + 1
    padded = jnp.pad(x, ((0, 0), (1, 1), (0, 0)))
    taps = [padded[:, j: j + stride * (t_out - 1) + 1: stride] for j in range(CONV_KERNEL)]
    return jnp.concatenate(taps, axis=-1)


class WhisperAttention(nnx.Module):
    """Whisper's multi-head attention (k_proj has no bias). Keys and values come in from outside (``kv``
    of the same or another sequence), so the decoder can take them from its caches."""

    def __init__(self, d_model: int, num_heads: int, *, dtype, param_dtype, attention_impl, rngs: nnx.Rngs):
        d = d_model
        self.num_heads, self.head_dim, self.attention_impl = num_heads, d_model // num_heads, attention_impl
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.q_proj = Dense(d, d, axes=('embed', 'heads'), **kw)
        self.k_proj = Dense(d, d, axes=('embed', 'kv_heads'), use_bias=False, **kw)
        self.v_proj = Dense(d, d, axes=('embed', 'kv_heads'), **kw)
        self.out_proj = Dense(d, d, axes=('heads', 'embed'), **kw)

    def heads(self, y: jax.Array) -> jax.Array:
        return y.reshape(*y.shape[:2], self.num_heads, self.head_dim)

    def kv(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Keys and values of ``x``, split into heads: (B, S, heads, head_dim) each."""
        return self.heads(self.k_proj(x)), self.heads(self.v_proj(x))

    def __call__(self, x: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None) -> jax.Array:
        out = attention(self.heads(self.q_proj(x)), k.astype(x.dtype), v.astype(x.dtype), mask,
                        implementation=self.attention_impl)
        return self.out_proj(out.reshape(*x.shape[:2], -1))


class WhisperLayer(nnx.Module):
    """What encoder and decoder layers share: pre-LN self-attention and the MLP fc2(act(fc1(LN(x))))."""

    def __init__(self, cfg, num_heads: int, ffn_dim: int, *, dtype, param_dtype, attention_impl, rngs: nnx.Rngs):
        self.cfg = cfg
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.self_attn_layer_norm = LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, **kw)
        self.self_attn = WhisperAttention(cfg.d_model, num_heads, attention_impl=attention_impl, **kw)
        self.final_layer_norm = LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, **kw)
        self.fc1 = Dense(cfg.d_model, ffn_dim, axes=('embed', 'mlp'), **kw)
        self.fc2 = Dense(ffn_dim, cfg.d_model, axes=('mlp', 'embed'), **kw)

    def mlp_hidden(self, x: jax.Array) -> jax.Array:
        """act(fc1(LN(x))): the MLP up to fc2."""
        return ACTIVATIONS[self.cfg.activation_function](self.fc1(self.final_layer_norm(x)))


class WhisperEncoderLayer(WhisperLayer):
    """Pre-LN block: x + attn(LN(x)); x + fc2(act(fc1(LN(x))))."""

    def __init__(self, cfg: WhisperEncoderConfig, *, dtype, param_dtype, attention_impl, rngs: nnx.Rngs):
        super().__init__(cfg, cfg.encoder_attention_heads, cfg.encoder_ffn_dim, dtype=dtype, param_dtype=param_dtype,
                         attention_impl=attention_impl, rngs=rngs)

    def __call__(self, x: jax.Array, rng: jax.Array | None, *, mask: jax.Array | None):
        r_attn, r_act, r_mlp = split_rng(rng, 3)
        h = self.self_attn_layer_norm(x)
        x = x + dropout(self.self_attn(h, *self.self_attn.kv(h), mask), self.cfg.dropout, r_attn)
        h = self.fc2(dropout(self.mlp_hidden(x), self.cfg.activation_dropout, r_act))
        return x + dropout(h, self.cfg.dropout, r_mlp), None


class WhisperEncoder(nnx.Module):
    """Log-mel (B, num_mel_bins, T_mel) -> last_hidden_state (B, ceil(T_mel / 2), d_model)."""

    def __init__(self, cfg: WhisperEncoderConfig, *, dtype=jnp.float32, param_dtype=jnp.float32, scan: bool = False,
                 remat_policy: str = 'none', attention_impl: str | None = None, rngs: nnx.Rngs):
        self.cfg, self.dtype = cfg, dtype
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        d = cfg.d_model
        self.conv1 = Dense(CONV_KERNEL * cfg.num_mel_bins, d, axes=('patch', 'embed'), **kw)
        self.conv2 = Dense(CONV_KERNEL * d, d, axes=('patch', 'embed'), **kw)
        self.embed_positions = param(rngs, lambda key, shape, dt: jnp.asarray(sinusoids(*shape), dt),
                                     (cfg.max_source_positions, d), ('pos', 'embed'), param_dtype)
        self.layers = LayerStack(
            lambda r: WhisperEncoderLayer(cfg, dtype=dtype, param_dtype=param_dtype, attention_impl=attention_impl,
                                          rngs=r),
            cfg.encoder_layers, scan=scan, remat_policy=remat_policy, rngs=rngs)
        self.layer_norm = LayerNorm(d, eps=cfg.layer_norm_eps, **kw)

    def __call__(self, input_features: jax.Array, *, attention_mask: jax.Array | None = None,
                 dropout_rng: jax.Array | None = None) -> jax.Array:
        """Encode log-mel features.

        ``attention_mask`` (1 = valid) is either per encoder position, shape (B, ceil(T_mel / 2)), or per
        mel frame, shape (B, T_mel) as ``WhisperFeatureExtractor(return_attention_mask=True)`` gives it.
        Only the per-frame form knows whether an odd-length clip's last stride window is half padding;
        the per-position form treats both frames of a valid position as valid.
        """
        cfg = self.cfg
        if input_features.ndim != 3:
            raise ValueError(f"WhisperEncoder: input_features must be (batch, num_mel_bins={cfg.num_mel_bins}, "
                             f"frames), got shape {tuple(input_features.shape)}")
        b, bins, t_mel = input_features.shape
        if bins != cfg.num_mel_bins:
            raise ValueError(f"WhisperEncoder: input_features has {bins} mel bins on axis 1, the config expects "
                             f"{cfg.num_mel_bins} (layout is (batch, mel bins, frames))")
        if not 1 <= t_mel <= cfg.max_mel_frames:
            raise ValueError(f"WhisperEncoder: {t_mel} mel frames; the position table "
                             f"(max_source_positions={cfg.max_source_positions}) allows 1..{cfg.max_mel_frames}")
        t_out = output_length(t_mel)
        frame_valid, valid = self._masks(attention_mask, b, t_mel, t_out)

        x = jnp.swapaxes(input_features, 1, 2).astype(self.dtype)  # (B, T_mel, bins)
        if frame_valid is not None:
            x = jnp.where(frame_valid[..., None], x, 0)
        x = jax.nn.gelu(self.conv1(_im2col(x, 1)), approximate=False)
        if frame_valid is not None:
            x = jnp.where(frame_valid[..., None], x, 0)
        x = jax.nn.gelu(self.conv2(_im2col(x, 2)), approximate=False)
        x = x + self.embed_positions[:t_out].astype(self.dtype)

        r_embed, r_layers = split_rng(dropout_rng, 2)
        x = dropout(x, cfg.dropout, r_embed)
        layer_rngs = None if r_layers is None else jax.random.split(r_layers, cfg.encoder_layers)
        mask = None if valid is None else key_mask(valid)
        x, _ = self.layers(x, layer_rngs, mask=mask)
        x = self.layer_norm(x)
        if valid is not None:
            x = jnp.where(valid[..., None], x, jnp.zeros_like(x))
        return x

    @staticmethod
    def _masks(attention_mask, b: int, t_mel: int, t_out: int):
        """(per-frame validity (B, T_mel), per-position validity (B, T_out)) as booleans, or (None, None)."""
        if attention_mask is None:
            return None, None
        m = jnp.asarray(attention_mask)
        if m.ndim != 2 or m.shape[0] != b or m.shape[1] not in (t_out, t_mel):
            raise ValueError(f"WhisperEncoder: attention_mask must be (batch={b}, {t_out}) per encoder position or "
                             f"(batch={b}, {t_mel}) per mel frame, got shape {tuple(m.shape)}")
        m = m.astype(bool)
        if m.shape[1] == t_mel:  # per frame; a position is valid when the centre frame of its window is
            return m, m[:, ::2]
        return jnp.repeat(m, 2, axis=1)[:, :t_mel], m
