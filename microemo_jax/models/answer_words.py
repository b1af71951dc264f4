"""The answer-words head (``model.answer_words``, training only): the words of the answer, predicted from the
pooled video tokens by one linear map to the LLM's vocabulary.

Why: it gives the video path a loss that the prompt's words cannot meet (``training/losses.py``
``answer_words_loss``), meant to make the video tokens carry what the answer says whatever the run. On the demo it
did not make a run rely on its micro-expression branch (docs/ablations.md), so the demo keeps it off: a switch."""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from microemo_jax.models.layers import Dense


def answer_words_weight(m) -> float:
    """The weight of the answer-words loss (``model.answer_words.weight``; 0, as in an older config without the
    section: no head, the paper's objective)."""
    aw = m.get('answer_words')
    return float(aw.weight) if aw is not None else 0.0


class AnswerWordsHead(nnx.Module):

    def __init__(self, width: int, vocab_size: int, *, rngs: nnx.Rngs, **dtypes):
        self.proj = Dense(width, vocab_size, axes=('embed', 'vocab'), rngs=rngs, **dtypes)

    def __call__(self, video, valid):
        """video (B, slots, queries, D) tokens, valid (B, slots) -> float32 word logits (B, vocab) of the mean
        over the valid slots' tokens."""
        w = valid.astype(video.dtype)[:, :, None, None]
        pooled = (video * w).sum(axis=(1, 2)) / jnp.maximum(w.sum(axis=(1, 2)) * video.shape[2], 1.0)
        return self.proj(pooled).astype(jnp.float32)
