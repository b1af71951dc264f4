"""Timestamp-bound frame encoder (TimeChat): ViT patch tokens -> image Q-Former that also reads
"This frame is sampled at {t} second." -> query tokens per frame.

Two switches reproduce TimeChat's known quirks:

* ``timestamp_tokenizer='llm'``: TimeChat tokenizes the sentence with the LLaMA tokenizer and feeds those ids
  to the BERT Q-Former's word embedding. ``prepare`` then tokenizes with the LLM tokenizer (each record says
  which tokenizer made its ids, and the data pipeline refuses a dataset made with the other one), and the
  Q-Former's word embedding gets ``max(image_qformer.vocab_size, llm.vocab_size)`` rows so every LLM id
  has a row (TimeChat's LLaMA ids above BERT's 30523 rows would index past its table). A pretrained
  Q-Former keeps its rows; the added ones start from the usual initialisation.
* ``keep_text_tokens=True``: the text positions of the Q-Former output stay next to the query positions;
  their ``timestamp_mask`` comes along, so padded text positions never reach the video Q-Former.

Without ``timestamp_text`` the Q-Former has no text parts at all (TimeChat drops them the same way); with
text but without ``keep_text_tokens``, its last layer has no text FFN (its output would be dropped).
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from microemo_jax.models.layers import param
from microemo_jax.models.qformer import QFormer
from microemo_jax.models.vit import VisionTransformer


def text_vocab_size(m) -> int:
    """Rows of the image Q-Former's word embedding for model config ``m``: 0 without timestamp text; the
    Q-Former vocabulary, or in 'llm' mode at least the LLM's (the timestamp ids are then LLM ids)."""
    fe = m.frame_encoder
    if not fe.timestamp_text:
        return 0
    if fe.timestamp_tokenizer == 'llm':
        return max(m.image_qformer.vocab_size, m.llm.vocab_size)
    return m.image_qformer.vocab_size


class FrameEncoder(nnx.Module):

    def __init__(self, vit: VisionTransformer, qformer: QFormer, num_query_tokens: int, *,
                 timestamp_text: bool = True, keep_text_tokens: bool = False, param_dtype=jnp.float32,
                 rngs: nnx.Rngs):
        self.vit, self.qformer = vit, qformer
        self.timestamp_text, self.keep_text_tokens = timestamp_text, keep_text_tokens
        qformer.prune_text(text_input=timestamp_text, text_output=timestamp_text and keep_text_tokens)
        width = qformer.cfg.hidden_size
        self.query_tokens = param(rngs, nnx.initializers.normal(0.02), (1, num_query_tokens, width),
                                  (None, 'query', 'embed'), param_dtype)

    @property
    def num_query_tokens(self) -> int:
        return self.query_tokens.get_value().shape[1]

    def tokens_per_frame(self, max_timestamp_tokens: int) -> int:
        return self.num_query_tokens + (max_timestamp_tokens if self.timestamp_text and self.keep_text_tokens else 0)

    def __call__(self, frames, timestamp_ids=None, timestamp_mask=None, *, dropout_rng=None):
        """frames (B, T, C, H, W); timestamp_ids/mask (B, T, L) -> tokens (B, T, N, D) and their validity (B, T, N),
        N = tokens_per_frame: the query tokens are always valid, kept text tokens where ``timestamp_mask`` is 1."""
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
            valid = mask.astype(bool)
            if not self.keep_text_tokens:
                out, valid = out[:, :queries.shape[1]], valid[:, :queries.shape[1]]
        else:
            out = self.qformer(queries, image_embeds, dropout_rng=dropout_rng)
            valid = jnp.ones(out.shape[:2], bool)
        return out.reshape((b, t) + out.shape[1:]), valid.reshape((b, t) + valid.shape[1:])
