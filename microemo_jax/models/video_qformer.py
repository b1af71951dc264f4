"""Utterance-aware video Q-Former: visual tokens for the whole video and for each utterance.

Frame tokens get a learned frame-position embedding, then a small Q-Former with its own queries runs
once per slot (whole video, each utterance span, optional fixed windows), cross-attending only to the
frames of that slot. A learned slot-index embedding marks which slot each output token came from.
All slots run as one batched call with masks, so shapes stay static. A frame's tokens are its image
Q-Former tokens (plus kept timestamp-text tokens, plus its local face tokens when the global-local
attention is off); ``token_mask`` says which of them are real.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from microemo_jax.models.layers import default_kernel_init, param
from microemo_jax.models.qformer import QFormer
from microemo_jax.models.slots import num_slots, slot_masks


class SlotQFormer(nnx.Module):
    """Shared by video and audio: a Q-Former run once per slot over the elements the slot selects."""

    def __init__(self, qformer: QFormer, num_query_tokens: int, num_slots: int, *, param_dtype=jnp.float32,
                 rngs: nnx.Rngs):
        self.qformer = qformer
        width = qformer.cfg.hidden_size
        self.num_slots = num_slots
        self.query_tokens = param(rngs, nnx.initializers.normal(0.02), (1, num_query_tokens, width),
                                  (None, 'query', 'embed'), param_dtype)
        self.slot_embed = param(rngs, default_kernel_init, (num_slots, width), (None, 'embed'), param_dtype)

    def run_slots(self, elements, element_masks, *, dropout_rng=None):
        """elements (B, N, E) tokens, element_masks (B, S, N) -> (B, S, Q, D)."""
        b, s, n = element_masks.shape
        if s != self.num_slots:
            raise ValueError(f"{s} slots given, the Q-Former was built for {self.num_slots}")
        ctx = jnp.broadcast_to(elements[:, None], (b, s) + elements.shape[1:]).reshape((b * s,) + elements.shape[1:])
        q = self.query_tokens.get_value().shape[1]
        queries = jnp.broadcast_to(self.query_tokens[...], (b * s, q, self.query_tokens.get_value().shape[-1]))
        out = self.qformer(queries, ctx, encoder_attention_mask=element_masks.reshape(b * s, n).astype(jnp.int32),
                           dropout_rng=dropout_rng)
        out = out.reshape(b, s, q, -1)
        return out + self.slot_embed[...].astype(out.dtype)[None, :, None, :]


class VideoQFormer(nnx.Module):

    def __init__(self, qformer: QFormer, num_query_tokens: int, max_frames: int, max_utterances: int,
                 num_frames: int, *, utterance_scale: bool = True, window_size: int = 0, window_stride: int = 0,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        self.max_frames, self.utterance_scale = max_frames, utterance_scale
        self.window_size, self.window_stride = window_size, window_stride
        n = num_slots(max_utterances, num_frames, utterance_scale=utterance_scale, window_size=window_size,
                      window_stride=window_stride)
        self.slots = SlotQFormer(qformer, num_query_tokens, n, param_dtype=param_dtype, rngs=rngs)
        width = qformer.cfg.encoder_hidden_size
        self.frame_pos = param(rngs, default_kernel_init, (max_frames, width), ('pos', 'embed'), param_dtype)

    def __call__(self, frame_tokens, token_mask, frame_mask, timestamps, utterances, utterance_mask, *,
                 dropout_rng=None):
        """frame_tokens (B, T, N, D), token_mask (B, T, N) or None (all valid) -> tokens (B, S, Q, D) and slot
        validity (B, S). A slot reads the valid tokens of the frames it selects."""
        b, t, n, d = frame_tokens.shape
        if t > self.max_frames:
            raise ValueError(f"{t} frames exceed the frame-position embedding ({self.max_frames} positions)")
        x = frame_tokens + self.frame_pos[:t].astype(frame_tokens.dtype)[None, :, None, :]
        masks, slot_valid = slot_masks(timestamps, frame_mask, utterances, utterance_mask,
                                       utterance_scale=self.utterance_scale, window_size=self.window_size,
                                       window_stride=self.window_stride)
        element_masks = jnp.repeat(masks, n, axis=-1)  # every token of a selected frame...
        if token_mask is not None:                      # ...that is not padding (e.g. padded timestamp text)
            element_masks = element_masks & token_mask.reshape(b, 1, t * n).astype(bool)
        out = self.slots.run_slots(x.reshape(b, t * n, d), element_masks, dropout_rng=dropout_rng)
        return out, slot_valid
