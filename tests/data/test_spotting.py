"""Micro-expression spotting: tubelets move to each interval's peak of facial motion, on real encoded video."""
from __future__ import annotations

import numpy as np
import pytest

from microemo_jax.data.faces import blazeface, spotting
from microemo_jax.data.video import decode_clip, move_tubelets
from microemo_jax.demo import face as demo_face
from tests.support.media import index_frames, read_index, write_h264_mp4

K = 4


@pytest.fixture(scope='module')
def detector():
    return blazeface.BlazeFace('short')


def test_apex_starts_pick_the_window_with_the_most_motion_inside_each_interval():
    motion = np.zeros(40)
    motion[[13, 14]] = 5.0                  # a flash between anchors 10 and 20: changes into frames 13 and 14
    motion[33] = 1.0                        # a smaller one in the last interval
    starts = spotting.apex_starts(motion, [0, 10, 20, 30], 40, K)
    assert starts[0] == 0 and starts[2] == 20                    # nothing moves: the tubelet stays at the anchor
    assert 10 <= starts[1] and starts[1] + K - 1 >= 14 and starts[1] + 1 <= 13     # both changes inside the window
    assert starts[3] in (30, 31, 32)                              # a window holding the change into frame 33
    # intervals shorter than the window keep their anchors (here: 2 frames, and the clip's last 2)
    assert spotting.apex_starts(motion, [12, 14], 16, K).tolist() == [12, 14]


def test_frame_boxes_interpolate_between_anchors_and_hold_at_the_ends():
    boxes = spotting.frame_boxes([2, 6, 9], [np.array([0, 0, 10, 10]), None, np.array([14, 7, 10, 10])], 12)
    np.testing.assert_allclose(boxes[[0, 2, 5, 9, 11]], [[0, 0, 10, 10], [0, 0, 10, 10], [6, 3, 10, 10],
                                                        [14, 7, 10, 10], [14, 7, 10, 10]])
    assert np.isnan(spotting.frame_boxes([0, 5], [None, None], 8)).all()


def test_move_tubelets_takes_the_right_native_frames_with_their_times(tmp_path):
    path = write_h264_mp4(tmp_path / 'numbered.mp4', index_frames(30, 64, 64), fps=25)
    clip = decode_clip(path, 3, frame_size=32, tubelet_length=K, motion_side=48)
    assert clip.thumbnails.shape == (30, 48, 48) and clip.thumbnails.dtype == np.uint8
    np.testing.assert_allclose(clip.frame_times, np.arange(30) / 25, atol=1e-6)
    np.testing.assert_array_equal(clip.tubelet_starts, clip.frame_indices)       # at the anchors until moved
    np.testing.assert_allclose(clip.tubelet_times, (clip.frame_indices[:, None] + np.arange(K)) / 25, atol=1e-6)
    moved = move_tubelets(path, clip, [2, 11, 27])
    got = [[read_index(moved.tubelets[i, k]) if moved.tubelet_mask[i, k] else None for k in range(K)] for i in range(3)]
    assert got == [[2, 3, 4, 5], [11, 12, 13, 14], [27, 28, 29, None]]          # the last runs past the end
    np.testing.assert_allclose(moved.tubelet_times[1], np.arange(11, 15) / 25, atol=1e-6)
    assert moved.tubelet_times[2, 3] == 0 and moved.tubelet_starts.tolist() == [2, 11, 27]
    np.testing.assert_array_equal(moved.frames, clip.frames)                    # the global frames stay
    with pytest.raises(ValueError, match='one frame index'):
        move_tubelets(path, clip, [1, 2])


def _face_video(path, flash_frames, n=50, emotion='angry'):
    """The demo face, neutral, talking a little (jaw), with a full ``emotion`` on ``flash_frames``."""
    rig = demo_face.FaceRig(128)
    jaw = demo_face.PARAMS.index('jaw')
    frames = []
    for i in range(n):
        p = demo_face.expression(emotion if i in flash_frames else 'neutral', 1.0 if i in flash_frames else 0.0)
        p[jaw] += 0.1 * (1 + np.sin(i / 2.0))                # talking: the mouth moves in every frame
        frames.append(rig.render(p))
    return write_h264_mp4(path, np.stack(frames))


def test_spotting_finds_a_micro_expression_between_the_global_frames(tmp_path, detector):
    # 4 frames sampled from 50: anchors at frames 6, 19, 31, 44; a 3-frame flash at 24-26 lies between two
    path = _face_video(tmp_path / 'flash.mp4', {24, 25, 26})
    clip = decode_clip(path, 4, frame_size=32, tubelet_length=K, motion_side=spotting.MOTION_SIDE)
    anchors = clip.frame_indices.tolist()
    assert not {24, 25, 26} & set(anchors) and not any({24, 25, 26} & set(range(a, a + K)) for a in anchors)
    starts = spotting.spot_tubelets(clip, detector)
    moved = move_tubelets(path, clip, starts)
    covering = [i for i, s in enumerate(starts.tolist()) if {24, 25, 26} & set(range(s, s + K))]
    assert covering == [1], (anchors, starts)                  # the interval that holds it, and only that one
    assert anchors[1] < starts[1] <= 26 and starts[1] + K - 1 <= anchors[2]
    # its crops now show the change: a big step between two of its frames, which the anchor's tubelet lacks
    steps = np.abs(np.diff(moved.tubelets[1].astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
    before = np.abs(np.diff(clip.tubelets[1].astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
    assert steps.max() > 3 * before.max(), (steps, before)


def test_a_still_face_keeps_its_tubelets_at_the_anchors(tmp_path, detector):
    rig = demo_face.FaceRig(128)
    still = np.stack([rig.render(demo_face.expression('neutral', 0.0))] * 40)
    path = write_h264_mp4(tmp_path / 'still.mp4', still)
    clip = decode_clip(path, 4, frame_size=32, tubelet_length=K, motion_side=spotting.MOTION_SIDE)
    motion = spotting.face_motion(clip.thumbnails, spotting.frame_boxes(
        clip.frame_indices, [np.array([20, 20, 80, 80])] * 4, len(clip.thumbnails)))
    assert motion.max() < 0.5                                  # coding noise only
    with pytest.raises(ValueError, match='motion_side'):
        spotting.spot_tubelets(decode_clip(path, 4, frame_size=32, tubelet_length=K), detector)
