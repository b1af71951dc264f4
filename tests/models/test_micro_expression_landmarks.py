"""The micro-expression branch's landmark input (model.micro_expression.landmarks): shape and motion of the
68 face-mesh points, invariant to where the face is and how big, ignored where unknown or switched off."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from microemo_jax.models.micro_expression import MicroExpressionBranch

B, T, K, F, D = 2, 3, 4, 16, 32


def _branch(landmarks=True, use_differences=True):
    return MicroExpressionBranch(F, D, K, 0, 4, use_differences=use_differences, landmarks=landmarks,
                                 rngs=nnx.Rngs(0))


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    feats = jnp.asarray(rng.standard_normal((B, T, K, F)), jnp.float32)
    mask = jnp.ones((B, T, K), bool)
    base = rng.uniform(0.3, 0.7, (68, 2))
    base[36:42] = [0.34, 0.40] + rng.normal(0, 0.01, (6, 2))     # right eye
    base[42:48] = [0.66, 0.40] + rng.normal(0, 0.01, (6, 2))     # left eye
    lms = np.broadcast_to(base, (B, T, K, 68, 2)).copy() + rng.normal(0, 0.003, (B, T, K, 68, 2))
    return feats, mask, lms, np.ones((B, T, K), bool)


def test_off_means_the_landmarks_are_not_read_and_no_parameters_are_added():
    feats, mask, lms, lm_mask = _inputs()
    off = _branch(landmarks=False)
    a, _ = off(feats, mask)
    b, _ = off(feats, mask, landmarks=jnp.asarray(lms) * 5, landmark_mask=lm_mask)
    np.testing.assert_array_equal(a, b)
    n_off = sum(x.size for x in jax.tree.leaves(nnx.state(off, nnx.Param)))
    n_on = sum(x.size for x in jax.tree.leaves(nnx.state(_branch(), nnx.Param)))
    assert n_on - n_off == 2 * (136 * D + D)                      # shape_proj + shape_motion


@pytest.mark.parametrize('use_differences', [True, False])
def test_expression_changes_the_tokens_head_motion_does_not(use_differences):
    feats, mask, lms, lm_mask = _inputs()
    branch = _branch(use_differences=use_differences)
    ref, valid = branch(feats, mask, landmarks=jnp.asarray(lms), landmark_mask=lm_mask)
    assert valid.all()
    # head motion: each crop's face moved and scaled as a whole (what alignment can leave behind)
    moved = lms.copy()
    moved[:, :, 2] = (moved[:, :, 2] - 0.5) * 1.2 + 0.5 + [0.05, -0.03]
    out, _ = branch(feats, mask, landmarks=jnp.asarray(moved), landmark_mask=lm_mask)
    np.testing.assert_allclose(out, ref, atol=2e-5)
    # expression: the mouth corners (48, 54) of crop 2 pull outwards
    smile = lms.copy()
    smile[:, :, 2, 48, 0] -= 0.03
    smile[:, :, 2, 54, 0] += 0.03
    out, _ = branch(feats, mask, landmarks=jnp.asarray(smile), landmark_mask=lm_mask)
    assert np.abs(np.asarray(out) - np.asarray(ref)).max() > 1e-3


def test_crops_without_landmarks_add_nothing_and_missing_inputs_are_an_error():
    feats, mask, lms, lm_mask = _inputs()
    branch = _branch()
    lm_mask[:, 1] = False                                        # anchor 1: the mesh lost the face
    ref, _ = branch(feats, mask, landmarks=jnp.asarray(lms), landmark_mask=lm_mask)
    garbage = lms.copy()
    garbage[:, 1] = np.random.default_rng(5).uniform(0, 1, garbage[:, 1].shape)
    out, _ = branch(feats, mask, landmarks=jnp.asarray(garbage), landmark_mask=lm_mask)
    np.testing.assert_allclose(out, ref, atol=1e-6)
    with pytest.raises(ValueError, match='face_landmarks'):
        branch(feats, mask)

