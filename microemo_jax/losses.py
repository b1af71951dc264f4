"""Instruction-tuning loss: next-token cross-entropy on the answer tokens only."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def next_token_loss(logits, input_ids, loss_mask):
    """Mean cross-entropy of predicting input_ids[:, t+1] from position t, where loss_mask[:, t+1] is set.

    logits (B, S, V) float32, input_ids (B, S), loss_mask (B, S) marking answer tokens.
    Returns (mean loss, number of answer tokens). A batch without answer tokens has loss 0.
    """
    logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
    targets = input_ids[:, 1:]
    nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    weight = loss_mask[:, 1:].astype(jnp.float32)
    count = weight.sum()
    return (nll * weight).sum() / jnp.maximum(count, 1.0), count
