"""Face detection, speaker tracking, face tubelets and OpenFace crops, on a real face photo (skimage astronaut)."""
from __future__ import annotations

import numpy as np
import pytest

from microemo_jax.data.faces.detector import FaceDetector
from microemo_jax.data.faces.track import iou as _iou, track_speaker
from microemo_jax.data.faces.tubelets import crop_box, face_tubelets, load_openface_tubelets
from microemo_jax.data.video import MediaError, decode_clip
from tests.support.media import (
    astronaut_face,
    index_frames,
    moving_face_frames,
    noise_frames,
    textured_background,
    write_h264_mp4,
)

# Where the Haar cascade puts the face inside astronaut_face(size): x 177..272, y 66..161 of the 512 px photo,
# crop origin (145, 36), crop side 160.
FACE_IN_PATCH = np.array([177 - 145, 66 - 36, 95, 95], np.float32) / 160


@pytest.fixture(scope='module')
def detector():
    return FaceDetector()


@pytest.fixture(scope='module')
def face_clip(tmp_path_factory):
    """2 s, 25 fps, 160x128: the astronaut's face slides left to right."""
    frames, boxes = moving_face_frames(50, 128, 160, face_size=64)
    path = write_h264_mp4(tmp_path_factory.mktemp('faces') / 'face.mp4', frames)
    return path, boxes


# ----------------------------------------------------------------------------------------------- detector
def test_detector_finds_the_astronaut(detector):
    frame = textured_background(144, 192, seed=1)
    frame[40:120, 70:150] = astronaut_face(80)
    dets = detector.detect(frame)
    assert dets.shape == (1, 5) and dets.dtype == np.float32
    truth = FACE_IN_PATCH * 80 + np.array([70, 40, 0, 0])
    assert _iou(dets[0, :4], truth) > 0.5, (dets, truth)
    assert dets[0, 4] > 2.0                                               # a confident detection


def test_detector_boxes_are_in_input_pixels_after_internal_downscale():
    frame = textured_background(600, 800, seed=2)
    frame[100:420, 300:620] = astronaut_face(320)
    dets = FaceDetector(max_side=200).detect(frame)                      # detects at 1/4 scale
    truth = FACE_IN_PATCH * 320 + np.array([300, 100, 0, 0])
    assert len(dets) == 1 and _iou(dets[0, :4], truth) > 0.5


@pytest.mark.parametrize('image', ['noise', 'background', 'flat'])
def test_detector_finds_no_face_where_there_is_none(detector, image):
    img = {'noise': noise_frames(1, 240, 320)[0], 'background': textured_background(240, 320, seed=3),
           'flat': np.full((240, 320, 3), 128, np.uint8)}[image]
    assert detector.detect(img).shape == (0, 5)


def test_detector_load_failure_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match='cascade'):
        FaceDetector(str(tmp_path / 'missing.xml'))
    bad = tmp_path / 'bad.xml'
    bad.write_text('<opencv_storage>not a cascade</opencv_storage>')
    with pytest.raises(RuntimeError, match='cascade'):
        FaceDetector(str(bad))


# ----------------------------------------------------------------------------------------------- tracking
def _box(x, y, s, score=5.0):
    return [x, y, s, s, score]


def test_track_prefers_the_big_frequent_face_and_interpolates_short_gaps():
    none = np.zeros((0, 5))
    dets = [np.array([_box(10, 10, 40), _box(100, 5, 12)]),              # speaker + a small false alarm
            np.array([_box(14, 10, 40)]),
            none,                                                         # missed: interpolated
            np.array([_box(22, 10, 40), _box(80, 60, 14)]),
            np.array([_box(120, 70, 50, 1.5)]),                          # one-off big box elsewhere
            np.array([_box(26, 10, 40)])]
    track = track_speaker(dets)
    np.testing.assert_allclose(track[0], [10, 10, 40, 40])
    np.testing.assert_allclose(track[2], [18, 10, 40, 40])               # halfway between anchors 1 and 3
    assert track[4] is not None and track[4][0] == pytest.approx(24)     # the speaker, not the one-off
    np.testing.assert_allclose(track[5], [26, 10, 40, 40])


def test_track_interpolates_by_time_and_leaves_long_gaps_and_ends_unknown():
    none = np.zeros((0, 5))
    dets = [none, np.array([_box(0, 0, 20)]), none, np.array([_box(24, 0, 20)]), none, none, none,
            np.array([_box(26, 0, 20)]), none]
    track = track_speaker(dets, times=[0, 1, 1.5, 4, 5, 6, 7, 8, 9], max_gap=2)
    assert track[0] is None and track[-1] is None                         # before first / after last: unknown
    np.testing.assert_allclose(track[2], [4, 0, 20, 20])                 # 1/6 of the way at t = 1.5
    assert track[4] is None and track[5] is None and track[6] is None    # 3 missing anchors > max_gap
    np.testing.assert_allclose(track[7], [26, 0, 20, 20])                # same face after the gap


def test_track_empty():
    assert track_speaker([np.zeros((0, 5))] * 3) == [None, None, None]
    assert track_speaker([]) == []


def test_crop_box_is_a_clipped_square():
    assert crop_box([40, 40, 20, 20], 100, 100, 0.25) == (35, 35, 65, 65)
    assert crop_box([0, 0, 20, 10], 100, 100, 0.5) == (0, 0, 40, 40)     # moved inside, stays square
    x0, y0, x1, y1 = crop_box([0, 0, 90, 90], 100, 60, 0.25)             # larger than the image: shrunk
    assert (x1 - x0, y1 - y0) == (60, 60) and y0 == 0


# ----------------------------------------------------------------------------------------------- tubelets
def test_face_tubelets_follow_the_moving_face(face_clip, detector):
    path, truth = face_clip
    clip = decode_clip(path, 8, frame_size=32, tubelet_length=4)
    ft = face_tubelets(clip, detector, crop_size=64)
    assert ft.faces.shape == (8, 4, 64, 64, 3) and ft.face_mask.shape == (8, 4) and ft.boxes.shape == (8, 4)
    assert ft.detected.all() and ft.any_face
    np.testing.assert_array_equal(ft.face_mask, clip.tubelet_mask)
    for i, anchor in enumerate(clip.frame_indices):                      # box on the real face at the anchor
        expected = FACE_IN_PATCH * 64 + np.array([truth[anchor][0], truth[anchor][1], 0, 0])
        assert _iou(ft.boxes[i], expected) > 0.5, (i, ft.boxes[i], expected)
    assert np.all(np.diff(ft.boxes[:, 0]) > 0)                           # it moves right
    # each crop still shows the face (the cascade finds it again inside the crop)
    assert all(len(detector.detect(ft.faces[i, 0])) == 1 for i in range(8))


def test_face_tubelets_use_one_box_for_the_whole_tubelet(face_clip, detector):
    import cv2
    path, _ = face_clip
    clip = decode_clip(path, 4, frame_size=32, tubelet_length=4)
    ft = face_tubelets(clip, detector, crop_size=48, margin=0.25, align=False, landmarks=False)
    for i in range(4):
        x0, y0, x1, y1 = crop_box(ft.boxes[i], clip.info.width, clip.info.height, 0.25)
        for k in range(4):
            if ft.face_mask[i, k]:
                want = cv2.resize(clip.tubelets[i, k, y0:y1, x0:x1], (48, 48), interpolation=cv2.INTER_AREA)
                np.testing.assert_array_equal(ft.faces[i, k], want)
    # the face moves 1.9 px per frame, the box does not: crops within a tubelet differ
    assert np.abs(ft.faces[0, 3].astype(int) - ft.faces[0, 0]).mean() > 2


def test_face_tubelets_in_a_rotated_phone_video(tmp_path, detector):
    frames, _ = moving_face_frames(12, 160, 128, face_size=64)          # upright portrait 128 wide x 160 tall
    stored = np.stack([np.rot90(f, -1) for f in frames])                 # stored landscape, rotation 90
    path = write_h264_mp4(tmp_path / 'phone.mp4', stored, rotation=90)
    assert len(detector.detect(stored[0])) == 0                          # the cascade needs upright faces
    clip = decode_clip(path, 3, frame_size=32, tubelet_length=2)
    ft = face_tubelets(clip, detector, crop_size=32)
    assert ft.detected.all() and ft.face_mask[:, 0].all()


def test_no_face_means_empty_mask(tmp_path, detector):
    path = write_h264_mp4(tmp_path / 'noface.mp4', index_frames(10, 96, 96))
    clip = decode_clip(path, 4, frame_size=32, tubelet_length=2)
    ft = face_tubelets(clip, detector, crop_size=32)
    assert not ft.any_face and not ft.faces.any() and not ft.boxes.any() and not ft.detected.any()


# ----------------------------------------------------------------------------------------------- OpenFace
def _numbered_crops(n, size=16):
    """n BGR crops whose blue channel is 5 * index and red channel 200 (to see the channel order)."""
    crops = np.zeros((n, size, size, 3), np.uint8)
    crops[..., 0] = (np.arange(n) * 5)[:, None, None]
    crops[..., 2] = 200
    return crops


def test_openface_crops_map_to_anchors_by_time(tmp_path):
    path = tmp_path / 'NAME.npy'
    np.save(path, _numbered_crops(40))
    ft = load_openface_tubelets(path, [0.05, 1.0, 1.96], 2.0, tubelet_length=4, crop_size=8)
    assert ft.faces.shape == (3, 4, 8, 8, 3)
    starts = [1, 20, 39]                                                  # floor(t / 2 s * 40)
    for i, s in enumerate(starts):
        for k in range(4):
            if s + k < 40:
                assert ft.face_mask[i, k]
                assert ft.faces[i, k, 0, 0, 2] == 5 * (s + k)            # BGR in the file -> RGB here
                assert ft.faces[i, k, 0, 0, 0] == 200
            else:
                assert not ft.face_mask[i, k]
    assert not ft.boxes.any() and ft.detected.all()


def test_openface_grey_float_and_rgb_arrays(tmp_path):
    grey = tmp_path / 'grey.npy'
    np.save(grey, np.full((10, 12, 12), 77, np.uint8))
    ft = load_openface_tubelets(grey, [0.5], 1.0, tubelet_length=2, crop_size=6)
    assert (ft.faces[0, :2] == 77).all()
    flt = tmp_path / 'float.npy'
    np.save(flt, np.full((10, 12, 12, 3), 0.5, np.float32))
    assert (load_openface_tubelets(flt, [0.5], 1.0, tubelet_length=1, crop_size=6).faces == 128).all()
    rgb = tmp_path / 'rgb.npy'
    np.save(rgb, _numbered_crops(4))
    ft = load_openface_tubelets(rgb, [0.0], 1.0, tubelet_length=1, crop_size=4, channel_order='rgb')
    assert ft.faces[0, 0, 0, 0, 2] == 200


def test_openface_empty_array_means_no_face(tmp_path):
    path = tmp_path / 'empty.npy'
    np.save(path, np.zeros((0,), np.uint8))
    ft = load_openface_tubelets(path, [0.1, 0.2], 1.0, tubelet_length=2, crop_size=4)
    assert not ft.any_face and ft.faces.shape == (2, 2, 4, 4, 3)


@pytest.mark.parametrize('kind', ['2d', 'channels5', 'object', 'text', 'nan', 'npz', 'negative', 'truncated'])
def test_openface_malformed_arrays_are_corrupt_faces(tmp_path, kind):
    path = tmp_path / f'{kind}.npy'
    if kind == '2d':
        np.save(path, np.zeros((10, 10), np.uint8))
    elif kind == 'channels5':
        np.save(path, np.zeros((3, 8, 8, 5), np.uint8))
    elif kind == 'object':
        np.save(path, np.array([{'a': 1}], dtype=object), allow_pickle=True)
    elif kind == 'text':
        path.write_text('not numpy')
    elif kind == 'nan':
        np.save(path, np.full((3, 8, 8, 3), np.nan, np.float32))
    elif kind == 'npz':
        with open(path, 'wb') as f:
            np.savez(f, a=np.zeros((3, 8, 8, 3), np.uint8))
    elif kind == 'negative':
        np.save(path, np.full((3, 8, 8, 3), -4, np.int16))
    elif kind == 'truncated':
        np.save(path, np.zeros((30, 32, 32, 3), np.uint8))
        path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(MediaError) as err:
        load_openface_tubelets(path, [0.1], 1.0, tubelet_length=2, crop_size=8)
    assert err.value.reason == 'corrupt_faces', str(err.value)
    assert path.name in str(err.value)


def test_openface_missing_file(tmp_path):
    with pytest.raises(MediaError) as err:
        load_openface_tubelets(tmp_path / 'nope.npy', [0.1], 1.0, tubelet_length=2, crop_size=8)
    assert err.value.reason == 'missing_file'
