import jax.numpy as jnp
import numpy as np

from microemo_jax.models.slots import num_slots, slot_masks, utterance_masks, window_masks


def test_utterances_select_frames_inside_their_span():
    times = jnp.array([[0.0, 1.0, 2.0, 3.0]])
    valid = jnp.array([[1, 1, 1, 0]])
    utts = jnp.array([[[0.5, 2.5], [1.2, 1.3], [2.9, 4.0], [0.0, 9.0]]])
    umask = jnp.array([[1, 1, 1, 0]])
    m = np.asarray(utterance_masks(times, valid, utts, umask))
    np.testing.assert_array_equal(m[0, 0], [0, 1, 1, 0])   # frames inside [0.5, 2.5]
    np.testing.assert_array_equal(m[0, 1], [0, 1, 0, 0])   # too short: nearest frame to its midpoint
    np.testing.assert_array_equal(m[0, 2], [0, 0, 1, 0])   # frame 3 is padding: nearest valid one
    np.testing.assert_array_equal(m[0, 3], [0, 0, 0, 0])   # padded utterance slot sees nothing


def test_windows_and_slot_layout():
    valid = jnp.array([[1, 1, 1, 1, 1, 0]])
    w = np.asarray(window_masks(valid, 2, 2))
    np.testing.assert_array_equal(w[0], [[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 0]])
    times = jnp.arange(6.0)[None]
    masks, slot_valid = slot_masks(times, valid, jnp.zeros((1, 2, 2)), jnp.array([[1, 0]]), window_size=2,
                                   window_stride=2)
    assert masks.shape == (1, num_slots(2, 6, window_size=2, window_stride=2), 6) == (1, 6, 6)
    np.testing.assert_array_equal(np.asarray(slot_valid[0]), [1, 1, 0, 1, 1, 1])
    assert num_slots(8, 32) == 9 and num_slots(8, 32, utterance_scale=False) == 1
