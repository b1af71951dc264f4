"""The GRPO objective (DeepSeekMath, arXiv 2402.03300), with Dr.GRPO's variant (arXiv 2503.20783) as a switch.

Pure functions of arrays; the train step (``grpo_step.py``) feeds them the policy's per-token log-probabilities.
Written by hand rather than imported from google-tunix (not a dependency), and checked against a numpy
reference in ``tests/training/test_grpo.py``; the choices follow tunix's ``grpo_loss_fn`` where the papers leave
them open:

* **Advantages** per group of the G samples of one clip: ``(r - mean) / (std + 1e-6)`` with the unbiased
  (ddof=1) std (``loss='grpo'``), or ``r - mean`` (``loss='dr_grpo'``: no std normalisation). Rows marked
  invalid (padding clips, groups with a non-finite reward) get advantage 0 and no loss.
* **Ratio** ``exp(logp - old_logp)`` per token, clipped to ``[1 - epsilon, 1 + epsilon]``; the token's policy term
  is ``max(-A * ratio, -A * clip(ratio))`` (the pessimistic bound). ``old_logp`` is the behaviour policy's
  (the rollout's), so with one update per rollout batch (``mu=1``) the ratio is 1 and only the gradient counts.
* **KL** to the reference with the k3 estimator ``exp(ref - logp) - (ref - logp) - 1`` (unbiased, >= 0),
  weighted by ``beta`` and added per token.
* **Masks**: a token counts when its row is valid and it is at or before the row's first end-of-sequence
  token (``completion_mask``); everything after it, and padding, weighs 0.
* **Aggregation**: per row the masked token sum divided by the row's token count (``grpo``) or by the fixed
  ``max_new_tokens`` (``dr_grpo``: no length normalisation, so long and short answers weigh alike per token);
  then the mean over rows that have a token. ``row_losses`` returns the per-row terms so that micro-batches can
  be summed and divided once by the whole batch's row count.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

LOSSES = ('grpo', 'dr_grpo')
STD_EPS = 1e-6


def group_advantages(rewards, valid, group_size: int, *, normalise_std: bool = True):
    """(B*G,) advantages of rewards whose rows are clip-major (row = clip * G + sample); invalid rows -> 0."""
    r = rewards.astype(jnp.float32).reshape(-1, group_size)
    ok = valid.reshape(-1, group_size)
    adv = r - r.mean(axis=1, keepdims=True)
    if normalise_std:
        adv = adv / (jnp.std(r, axis=1, ddof=1, keepdims=True) + STD_EPS)
    # XLA's mean multiplies by 1/G, so equal rewards can leave a ~1e-8 residue that the std division blows up to
    # ~0.05: a group whose rewards are all equal has nothing to compare and gets exactly 0
    same = (r.max(axis=1, keepdims=True) == r.min(axis=1, keepdims=True))
    return jnp.where(ok & ~same, adv, 0.0).reshape(-1)


def completion_mask(tokens, eos_ids, row_valid=None):
    """(N, T) bool: the tokens up to and including each row's first end-of-sequence token (of ``eos_ids``)."""
    is_eos = (tokens[..., None] == jnp.asarray(eos_ids, tokens.dtype).reshape(-1)).any(-1)
    before = jnp.cumsum(is_eos.astype(jnp.int32), axis=1) - is_eos.astype(jnp.int32)  # EOS tokens strictly before
    mask = before == 0
    return mask if row_valid is None else mask & row_valid[:, None]


def token_logprobs(logits, tokens, temperature: float = 1.0):
    """(log-probability of ``tokens``, entropy) per position under softmax(logits / temperature), float32."""
    logp_all = jax.nn.log_softmax(logits.astype(jnp.float32) / temperature, axis=-1)
    logp = jnp.take_along_axis(logp_all, tokens[..., None], axis=-1)[..., 0]
    entropy = -(jnp.exp(logp_all) * logp_all).sum(-1)
    return logp, entropy


def k3_kl(logp, ref_logp):
    """Schulman's k3 estimator of KL(policy || reference) per token: exp(d) - d - 1 with d = ref - logp."""
    d = ref_logp - logp
    return jnp.exp(d) - d - 1.0


def row_losses(logp, old_logp, ref_logp, advantages, mask, *, epsilon: float, beta: float, loss: str = 'grpo',
               max_new_tokens: int | None = None) -> tuple[jax.Array, dict]:
    """(per-row loss (N,), token sums for the metrics): see the module docstring.

    ``logp``, ``old_logp``, ``ref_logp``, ``mask`` are (N, T); ``advantages`` (N,). The sums (``tokens``,
    ``kl``, ``clipped``, ``ratio``) add over micro-batches; ``token_means`` turns them into means.
    """
    if loss not in LOSSES:
        raise ValueError(f"rl.loss={loss!r} must be one of {LOSSES}")
    m = mask.astype(jnp.float32)
    adv = advantages.astype(jnp.float32)[:, None]
    ratio = jnp.exp(logp - old_logp)
    unclipped = -adv * ratio
    clipped = -adv * jnp.clip(ratio, 1.0 - epsilon, 1.0 + epsilon)
    per_token = jnp.maximum(unclipped, clipped)
    kl = k3_kl(logp, ref_logp)
    per_token = per_token + beta * kl
    count = m.sum(axis=1)
    if loss == 'grpo':
        denom = jnp.maximum(count, 1.0)
    else:
        if not max_new_tokens:
            raise ValueError("loss='dr_grpo' divides by max_new_tokens: pass it")
        denom = jnp.float32(max_new_tokens)
    rows = (per_token * m).sum(axis=1) / denom
    sums = dict(tokens=m.sum(), rows=(count > 0).sum().astype(jnp.float32), kl=(kl * m).sum(),
                clipped=((clipped > unclipped) * m).sum(), ratio=(ratio * m).sum())
    return rows, sums


def token_means(sums: dict) -> dict:
    """Token means of ``row_losses``' sums: kl, clip_fraction (tokens where the clipped bound was the active one)."""
    tokens = jnp.maximum(sums['tokens'], 1.0)
    return dict(kl=sums['kl'] / tokens, clip_fraction=sums['clipped'] / tokens, ratio_mean=sums['ratio'] / tokens)


def grpo_loss(logp, old_logp, ref_logp, advantages, mask, *, epsilon: float, beta: float, loss: str = 'grpo',
              max_new_tokens: int | None = None):
    """The scalar objective to minimise (mean over rows with a token) and its metrics, for one whole batch."""
    rows, sums = row_losses(logp, old_logp, ref_logp, advantages, mask, epsilon=epsilon, beta=beta, loss=loss,
                            max_new_tokens=max_new_tokens)
    return rows.sum() / jnp.maximum(sums['rows'], 1.0), token_means(sums)
