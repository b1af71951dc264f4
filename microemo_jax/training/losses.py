"""Instruction-tuning loss: next-token cross-entropy on the answer tokens only, two ways.

``next_token_loss`` takes float32 logits (B, S, V). At LLaMA's 32k vocabulary and 4 x 512 tokens
those are 262 MB, and autodiff keeps them, their log-softmax and their gradient alive at once.
``chunked_next_token_loss`` fuses the loss with the LM head: it takes the final hidden states (B, S, D)
and the head kernel (D, V) instead and walks the B*(S-1) predicting rows in chunks of ``chunk`` rows
(``lax.scan``): per chunk it computes the logits, their log-sum-exp, the target logit and, in the same
pass, the gradient of the summed loss with respect to the chunk's hidden states and the kernel
(softmax - one-hot, times the row's weight). Those two gradients are all the backward pass needs
(``jax.custom_vjp``: it scales them by the incoming cotangent), so the head is three matmuls over the
vocabulary as in plain autodiff, and the largest float32 buffer is one chunk's (chunk, V) logits.

Same value and gradients as ``next_token_loss(hidden @ kernel, ...)`` (tests/training/test_losses.py).
"""
from __future__ import annotations

import functools

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


def answer_words_loss(logits, input_ids, loss_mask):
    """Cross-entropy of each clip's answer words under the word distribution ``softmax(logits)`` predicted from its
    video alone (``model.answer_words``): a video-conditioned unigram model of the answer.

    Why: the answer's next-token loss can be met from the prompt's words, and in some demo runs the model met it
    so, ignoring a micro-expression that the video tokens showed (docs/ablations.md). This loss can only be met by
    video tokens that carry what the answer says, the hidden emotion included.

    logits (B, V) float32, input_ids (B, S), loss_mask (B, S) marking answer tokens (position 0 never is, as in
    ``next_token_loss``). The target is the clip's answer tokens as a normalised bag of words. Returns the mean
    over answer tokens (a clip weighs as many tokens as its answer has, so micro-batches add up to their batch;
    0 without any) and the number of answer tokens."""
    ids, weight = input_ids[:, 1:], loss_mask[:, 1:].astype(jnp.float32)
    b, v = logits.shape
    rows = jnp.broadcast_to(jnp.arange(b)[:, None], ids.shape)
    counts = jnp.zeros((b, v), jnp.float32).at[rows, ids].add(weight)
    words = counts.sum(axis=-1)
    target = counts / jnp.maximum(words, 1.0)[:, None]
    ce = -(target * jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)).sum(axis=-1)
    count = words.sum()
    return (ce * words).sum() / jnp.maximum(count, 1.0), count


def _chunks(h, targets, weight, chunk: int):
    """(N, D), (N,), (N,) -> (n, chunk, ...) with zero-weight padding rows."""
    n = h.shape[0]
    pad = -n % chunk
    if pad:
        h = jnp.pad(h, ((0, pad), (0, 0)))
        targets = jnp.pad(targets, (0, pad))
        weight = jnp.pad(weight, (0, pad))
    k = h.shape[0] // chunk
    return h.reshape(k, chunk, -1), targets.reshape(k, chunk), weight.reshape(k, chunk), n


def _chunk_logits(h, w):
    return jnp.einsum('nd,dv->nv', h, w.astype(h.dtype), preferred_element_type=jnp.float32)


def _forward(h, w, targets, weight, chunk: int, with_grads: bool):
    hc, tc, wc, n = _chunks(h, targets, weight, chunk)

    def body(carry, xs):
        loss, dw = carry
        h_i, t_i, wt_i = xs
        logits = _chunk_logits(h_i, w)
        lse = jax.nn.logsumexp(logits, axis=-1)
        tgt = jnp.take_along_axis(logits, t_i[:, None], axis=-1)[:, 0]
        loss = loss + jnp.sum(wt_i * (lse - tgt))
        if not with_grads:
            return (loss, dw), None
        p = jnp.exp(logits - lse[:, None])                                         # softmax
        one_hot = jax.lax.broadcasted_iota(jnp.int32, p.shape, 1) == t_i[:, None]
        d = jnp.where(one_hot, p - 1.0, p) * wt_i[:, None]                          # d loss / d logits (fused)
        dh_i = jnp.einsum('nv,dv->nd', d.astype(h_i.dtype), w.astype(h_i.dtype), preferred_element_type=jnp.float32)
        dw = dw + jnp.einsum('nd,nv->dv', h_i, d.astype(h_i.dtype), preferred_element_type=jnp.float32)
        return (loss, dw), dh_i.astype(h.dtype)

    dw0 = jnp.zeros(w.shape, jnp.float32) if with_grads else None
    (loss, dw), dh = jax.lax.scan(body, (jnp.float32(0), dw0), (hc, tc, wc))
    if not with_grads:
        return loss
    return loss, dh.reshape(-1, h.shape[-1])[:n], dw.astype(w.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _weighted_nll_sum(h, w, targets, weight, chunk):
    """sum_i weight_i * (logsumexp(h_i @ w) - (h_i @ w)[targets_i]), for h (N, D), w (D, V)."""
    return _forward(h, w, targets, weight, chunk, with_grads=False)


def _fwd(h, w, targets, weight, chunk):
    loss, dh, dw = _forward(h, w, targets, weight, chunk, with_grads=True)
    return loss, (dh, dw)


def _bwd(chunk, res, g):
    dh, dw = res
    return (g * dh).astype(dh.dtype), (g * dw).astype(dw.dtype), None, None


_weighted_nll_sum.defvjp(_fwd, _bwd)


def chunked_next_token_loss(hidden, kernel, input_ids, loss_mask, *, chunk: int = 512):
    """``next_token_loss`` of the logits ``hidden @ kernel``, computed ``chunk`` rows at a time.

    hidden (B, S, D) final (normed) hidden states, kernel (D, V) the LM head, input_ids (B, S), loss_mask (B, S)
    marking answer tokens. Returns (mean loss over answer tokens, number of answer tokens); differentiable in
    ``hidden`` and ``kernel``. Matmuls run in ``hidden``'s dtype with float32 accumulation and float32 softmax.
    """
    b, s, d = hidden.shape
    h = hidden[:, :-1].reshape(-1, d)
    targets = input_ids[:, 1:].reshape(-1).astype(jnp.int32)
    weight = loss_mask[:, 1:].reshape(-1).astype(jnp.float32)
    count = weight.sum()
    chunk = max(1, min(int(chunk), h.shape[0]))
    total = _weighted_nll_sum(h, kernel, targets, weight, chunk)
    return total / jnp.maximum(count, 1.0), count
