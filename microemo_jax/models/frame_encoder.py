"""Timestamp-bound frame encoder (TimeChat): ViT patch tokens -> image Q-Former that also reads
"This frame is sampled at {t} second." -> query tokens per frame.

Two switches reproduce TimeChat's known quirks: the tokenizer used for the timestamp sentence
(``timestamp_tokenizer``, applied when the data is prepared) and ``keep_text_tokens``, which keeps the
text positions of the Q-Former output next to the query positions.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from microemo_jax.models.layers import param
from microemo_jax.models.qformer import QFormer
from microemo_jax.models.vit import VisionTransformer


class FrameEncoder(nnx.Module):

    def __init__(self, vit: VisionTransformer, qformer: QFormer, num_query_tokens: int, *,
                 timestamp_text: bool = True, keep_text_tokens: bool = False, param_dtype=jnp.float32,
                 rngs: nnx.Rngs):
        self.vit, self.qformer = vit, qformer
        self.timestamp_text, self.keep_text_tokens = timestamp_text, keep_text_tokens
        width = qformer.cfg.hidden_size
        self.query_tokens = param(rngs, nnx.initializers.normal(0.02), (1, num_query_tokens, width),
                                  (None, 'query', 'embed'), param_dtype)

    @property
    def num_query_tokens(self) -> int:
        return self.query_tokens.get_value().shape[1]

    def tokens_per_frame(self, max_timestamp_tokens: int) -> int:
        return self.num_query_tokens + (max_timestamp_tokens if self.timestamp_text and self.keep_text_tokens else 0)

    def __call__(self, frames, timestamp_ids=None, timestamp_mask=None, *, dropout_rng=None):
        """frames (B, T, C, H, W); timestamp_ids/mask (B, T, L) -> (B, T, tokens_per_frame, D)."""
        if frames.ndim != 5:
            raise ValueError(f"frames must be (batch, time, channels, height, width), got shape {frames.shape}")
        b, t = frames.shape[:2]
        image_embeds = self.vit(frames.reshape((b * t,) + frames.shape[2:]))
        queries = jnp.broadcast_to(self.query_tokens[...], (b * t,) + self.query_tokens.get_value().shape[1:])
        if self.timestamp_text:
            if timestamp_ids is None or timestamp_mask is None:
                raise ValueError("the frame encoder reads timestamp text: pass timestamp_ids and timestamp_mask "
                                 "(B, T, L), or set model.frame_encoder.timestamp_text=False")
            ids = timestamp_ids.reshape(b * t, -1)
            text_mask = timestamp_mask.reshape(b * t, -1).astype(jnp.int32)
            mask = jnp.concatenate([jnp.ones(queries.shape[:2], jnp.int32), text_mask], axis=1)
            out = self.qformer(queries, image_embeds, input_ids=ids, attention_mask=mask, dropout_rng=dropout_rng)
            if not self.keep_text_tokens:
                out = out[:, :queries.shape[1]]
        else:
            out = self.qformer(queries, image_embeds, dropout_rng=dropout_rng)
        return out.reshape((b, t) + out.shape[1:])
