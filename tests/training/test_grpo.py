"""The GRPO objective against a hand-written numpy reference: value and gradient, each term on its own.

The reference below is written from the formulas (DeepSeekMath's GRPO, Dr.GRPO, Schulman's k3), with explicit
loops, not from the code under test. The tiny case has ratios inside and outside the clip range with positive
and negative advantages, groups whose std is not 1, a reference that differs from the policy, a row that ends
early and one that never ends, and a padding row, so that breaking the clipping, the advantage normalisation,
the KL term or the masks changes the numbers.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from microemo_jax.training.grpo import completion_mask, group_advantages, grpo_loss, k3_kl, token_logprobs

EOS = 2
G = 3
EPS, BETA = 0.2, 0.1
TOKENS = np.array([[5, 6, EOS, 9],      # ends at its 3rd token: the 4th is masked
                   [5, 7, 8, 4],        # never ends: all 4 count
                   [EOS, 3, 3, 3],      # ends at once: 1 token
                   [4, 4, 4, EOS],
                   [6, EOS, EOS, EOS],
                   [7, 7, EOS, 0]], np.int32)
REWARDS = np.array([1.0, 0.0, 0.5, 2.0, 0.0, 0.0], np.float32)   # group 2's std is 1.155, group 1's 0.5
VALID = np.array([True, True, True, True, True, True])
rng = np.random.default_rng(0)
OLD = rng.normal(-1.5, 0.3, TOKENS.shape).astype(np.float32)
LOGP = (OLD + np.array([[0.5, -0.5, 0.05, 0.3], [0.1, 0.4, -0.4, 0.0], [0.25, 0.0, 0.0, 0.0],
                        [-0.3, 0.1, 0.5, -0.25], [0.15, 0.0, 0.0, 0.0], [0.0, -0.1, 0.3, 0.0]])).astype(np.float32)
REF = (LOGP + rng.normal(0.0, 0.4, TOKENS.shape)).astype(np.float32)


def reference(logp, rewards, valid, *, dr=False, max_new_tokens=4):
    """(loss, d loss / d logp) by hand."""
    n, t = TOKENS.shape
    adv = np.zeros(n)
    for start in range(0, n, G):
        r = rewards[start:start + G].astype(np.float64)
        mean = r.mean()
        std = math.sqrt(((r - mean) ** 2).sum() / (G - 1))
        for i in range(start, start + G):
            adv[i] = (r[i - start] - mean) if dr else (r[i - start] - mean) / (std + 1e-6)
            adv[i] = adv[i] if valid[i] else 0.0
    mask = np.zeros((n, t))
    for i in range(n):
        for j in range(t):
            mask[i, j] = valid[i]
            if TOKENS[i, j] == EOS:
                break
    total, grad, rows = 0.0, np.zeros((n, t)), 0
    for i in range(n):
        count = mask[i].sum()
        if count == 0:
            continue
        rows += 1
        denom = max_new_tokens if dr else count
        for j in range(t):
            if not mask[i, j]:
                continue
            ratio = math.exp(logp[i, j] - OLD[i, j])
            a = adv[i]
            clipped_ratio = min(max(ratio, 1 - EPS), 1 + EPS)
            surrogate = min(ratio * a, clipped_ratio * a)          # the pessimistic bound, maximised
            d = REF[i, j] - logp[i, j]
            kl = math.exp(d) - d - 1
            total += (-surrogate + BETA * kl) / denom
            # d/dlogp of the surrogate: ratio * a where the unclipped branch is the minimum (or the ratio is inside
            # the range, where both branches agree); 0 where the clipped branch is, flat outside the range
            inside = 1 - EPS <= ratio <= 1 + EPS
            d_sur = ratio * a if inside or ratio * a < clipped_ratio * a else 0.0
            grad[i, j] = (-d_sur + BETA * (1 - math.exp(d))) / denom
    return total / rows, grad / rows


def ours(logp, rewards=REWARDS, valid=VALID, *, loss='grpo'):
    mask = completion_mask(jnp.asarray(TOKENS), jnp.array([EOS]), jnp.asarray(valid))
    adv = group_advantages(jnp.asarray(rewards), jnp.asarray(valid), G, normalise_std=loss == 'grpo')
    return grpo_loss(logp, jnp.asarray(OLD), jnp.asarray(REF), adv, mask, epsilon=EPS, beta=BETA, loss=loss,
                     max_new_tokens=TOKENS.shape[1])


@pytest.mark.parametrize('loss', ['grpo', 'dr_grpo'])
def test_loss_and_gradient_match_the_hand_reference(loss):
    value, grad = jax.value_and_grad(lambda p: ours(p, loss=loss)[0])(jnp.asarray(LOGP))
    want, want_grad = reference(LOGP, REWARDS, VALID, dr=loss == 'dr_grpo')
    assert float(value) == pytest.approx(want, rel=1e-5)
    np.testing.assert_allclose(np.asarray(grad), want_grad, rtol=1e-4, atol=1e-7)
    # the case reaches both branches: some tokens clipped (zero policy gradient), some not
    ratio = np.exp(LOGP - OLD)
    assert ((ratio > 1 + EPS) | (ratio < 1 - EPS)).any() and ((ratio < 1 + EPS) & (ratio > 1 - EPS)).any()


def test_each_term_is_felt():
    """The loss moves when the clip range, the std normalisation or beta changes (each term matters here)."""
    base, metrics = ours(jnp.asarray(LOGP))
    assert 0 < float(metrics['clip_fraction']) < 1 and float(metrics['kl']) > 0
    assert float(ours(jnp.asarray(LOGP), loss='dr_grpo')[0]) != pytest.approx(float(base), rel=1e-3)
    # clip fraction by hand: tokens where the clipped bound is the smaller (active) one, over counted tokens
    mask = np.asarray(completion_mask(jnp.asarray(TOKENS), jnp.array([EOS])))
    adv = np.asarray(group_advantages(jnp.asarray(REWARDS), jnp.asarray(VALID), G))[:, None]
    ratio = np.exp(LOGP - OLD)
    clipped = -adv * np.clip(ratio, 1 - EPS, 1 + EPS) > -adv * ratio
    assert float(metrics['clip_fraction']) == pytest.approx((clipped * mask).sum() / mask.sum(), rel=1e-6)
    d = REF - LOGP
    assert float(metrics['kl']) == pytest.approx(((np.exp(d) - d - 1) * mask).sum() / mask.sum(), rel=1e-5)


def test_group_advantages_by_hand():
    rewards = jnp.array([0.0, 2.0, 4.0, 1.0, 1.0, 1.0])
    valid = jnp.array([True, True, True, True, True, False])
    np.testing.assert_allclose(group_advantages(rewards, valid, 3), [-1, 0, 1, 0, 0, 0], atol=1e-5)   # std (ddof 1) 2
    np.testing.assert_allclose(group_advantages(rewards, valid, 3, normalise_std=False), [-2, 0, 2, 0, 0, 0])
    # equal rewards: exactly 0, also when float rounding of the group mean leaves a residue (0.1 * 3 / 3)
    same = jax.jit(lambda r: group_advantages(r, jnp.ones(6, bool), 3))(jnp.full((6,), 0.1, jnp.float32))
    assert not np.asarray(same).any()


def test_masks_padding_and_everything_after_eos():
    mask = completion_mask(jnp.asarray(TOKENS), jnp.array([EOS, -1, -1]), jnp.array([1, 1, 1, 1, 1, 0], bool))
    np.testing.assert_array_equal(np.asarray(mask), [[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 1],
                                                     [1, 1, 0, 0], [0, 0, 0, 0]])
    # a padding row changes nothing: dropping row 5 from the last group changes only that group's advantages
    valid = VALID.copy()
    valid[5] = False
    value, grad = jax.value_and_grad(lambda p: ours(p, valid=valid)[0])(jnp.asarray(LOGP))
    want, want_grad = reference(LOGP, REWARDS, valid)
    assert float(value) == pytest.approx(want, rel=1e-5) and not np.asarray(grad)[5].any()
    np.testing.assert_allclose(np.asarray(grad), want_grad, rtol=1e-4, atol=1e-7)


def test_k3_and_token_logprobs():
    assert float(k3_kl(jnp.float32(-1.0), jnp.float32(-1.0))) == 0.0
    assert float(k3_kl(jnp.float32(-1.0), jnp.float32(-2.0))) == pytest.approx(math.exp(-1) + 1 - 1)
    logits = jnp.array([[[1.0, 2.0, 0.5]]])
    logp, entropy = token_logprobs(logits, jnp.array([[1]]), temperature=2.0)
    p = np.exp(np.array([0.5, 1.0, 0.25]))
    p /= p.sum()
    assert float(logp[0, 0]) == pytest.approx(math.log(p[1]), rel=1e-6)
    assert float(entropy[0, 0]) == pytest.approx(-(p * np.log(p)).sum(), rel=1e-6)
