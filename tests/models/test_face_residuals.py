"""face_input='residuals': each crop minus its clip's mean crop (the expression without the identity)."""
import jax.numpy as jnp
import numpy as np

from microemo_jax.models.micro_expression import face_residuals, feature_residuals


def test_residuals_remove_the_identity_keep_the_change_and_ignore_missing_crops():
    rng = np.random.default_rng(0)
    change = np.zeros((1, 2, 3, 3, 4, 4), np.float32)
    change[0, 1, 2, :, :2] = 1.0                                       # one crop: the brows move
    mask = np.ones((1, 2, 3), bool)
    mask[0, 0, 2] = False                                               # a missing crop (zeros, not counted)
    out = []
    for _ in range(2):                                                  # two identities, the same expression change
        face = rng.normal(size=(1, 1, 1, 3, 4, 4)).astype(np.float32)
        crops = np.where(mask[..., None, None, None], face + change, 0.0)
        out.append(np.asarray(face_residuals(jnp.asarray(crops), jnp.asarray(mask))))
    np.testing.assert_allclose(out[0], out[1], atol=1e-5)              # who it is does not matter
    assert np.abs(out[0][0, 1, 2, :, :2] - 0.8).max() < 1e-5           # the change stands out (1 - 1/5 of it)
    assert (out[0][0, 0, 2] == 0).all()                                 # a missing crop stays empty
    np.testing.assert_allclose(out[0][mask].mean(axis=0), 0.0, atol=1e-6)   # residuals average to zero


def test_feature_residuals_give_a_still_face_zeros_and_keep_a_departure_whoever_it_is():
    """feature_baseline: each crop's face features minus its clip's mean features."""
    rng = np.random.default_rng(1)
    mask = np.ones((1, 2, 3), bool)
    mask[0, 1, 0] = False                                               # a missing crop: zeros, not counted
    still = np.broadcast_to(rng.normal(size=(1, 1, 1, 8)), (1, 2, 3, 8)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(feature_residuals(jnp.asarray(still), jnp.asarray(mask))), 0.0,
                               atol=1e-6)
    micro = np.zeros((1, 2, 3, 8), np.float32)
    micro[0, 1, 2, :3] = 1.0                                            # one crop departs: the micro-expression
    out = [np.asarray(feature_residuals(jnp.asarray(np.where(mask[..., None], face + micro, 0.0)),
                                        jnp.asarray(mask)))
           for face in (still, 5.0 * still)]                           # two speakers, the same departure
    np.testing.assert_allclose(out[0], out[1], atol=1e-5)
    np.testing.assert_allclose(out[0][0, 1, 2, :3], 0.8, atol=1e-5)   # 1 - 1/5 of it (5 real crops)
    assert (out[0][0, 1, 0] == 0).all()
