"""BlazeFace detection, face-mesh landmarks and face alignment on a real face photo (skimage astronaut).

Reference points were read off the 512 px photo by hand (microemo_jax/demo/face.py LM): the eyes at
(201, 101) and (244.5, 102) (the person's right eye is on the image's left), the mouth centre at (222, 145).
"""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from skimage import data

from microemo_jax.data.faces import align, blazeface, detector as face_detector, landmarks, tubelets as faces
from microemo_jax.data.faces.track import iou as _iou
from microemo_jax.data.video import decode_clip
from microemo_jax.demo import face as demo_face
from tests.support.media import astronaut_face, moving_face_frames, noise_frames, textured_background, write_h264_mp4

RIGHT_EYE, LEFT_EYE, MOUTH = np.array([201.0, 101.0]), np.array([244.5, 102.0]), np.array([222.0, 145.0])
HAAR_BOX = np.array([177, 66, 95, 95], np.float32)       # where the Haar cascade puts her face


@pytest.fixture(scope='module')
def photo():
    return data.astronaut()


@pytest.fixture(scope='module')
def short():
    return blazeface.BlazeFace('short')


@pytest.fixture(scope='module')
def mesh():
    return landmarks.FaceMesh()


def _similar(img, angle, scale, shift):
    """img rotated by ``angle`` degrees and scaled about its centre, then shifted; and the 2 x 3 matrix."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += shift
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE), m


# ----------------------------------------------------------------------------------------------- BlazeFace
def test_anchor_layout_matches_the_models():
    a = blazeface.ssd_anchors(128, (8, 16, 16, 16), 1.0)
    assert a.shape == (896, 2)                                   # 16x16x2 + 8x8x6
    np.testing.assert_allclose(a[:2], [[0.5 / 16, 0.5 / 16]] * 2)  # two anchors per stride-8 cell
    np.testing.assert_allclose(a[512:518], [[0.5 / 8, 0.5 / 8]] * 6)
    np.testing.assert_allclose(a[-1], [7.5 / 8, 7.5 / 8])
    full = blazeface.ssd_anchors(192, (4,), 0.0)
    assert full.shape == (2304, 2)
    np.testing.assert_allclose(full[1], [1.5 / 48, 0.5 / 48])   # row-major: x varies fastest


@pytest.mark.parametrize('model', ['short', 'full'])
def test_blazeface_finds_the_astronaut_with_keypoints(photo, model, short):
    det = short if model == 'short' else blazeface.BlazeFace('full')
    boxes, kps = det.detect_with_keypoints(photo)
    assert boxes.shape == (1, 5) and boxes.dtype == np.float32 and kps.shape == (1, 6, 2)
    assert _iou(boxes[0, :4], HAAR_BOX) > 0.6, boxes
    assert boxes[0, 4] > 0.8
    # BlazeFace keypoints are coarse (the mesh refines them): within ~1/8 of the 95 px face
    assert np.linalg.norm(kps[0, 0] - RIGHT_EYE) < 12 and np.linalg.norm(kps[0, 1] - LEFT_EYE) < 12
    assert np.linalg.norm(kps[0, 3] - MOUTH) < 10


@pytest.mark.parametrize('height, width, top, left', [(200, 480, 40, 300), (480, 220, 280, 20)])
def test_blazeface_maps_letterboxed_boxes_back_to_image_pixels(short, height, width, top, left):
    frame = textured_background(height, width, seed=4)       # wide: padded top and bottom; tall: left and right
    frame[top:top + 160, left:left + 160] = astronaut_face(160)
    boxes, kps = short.detect_with_keypoints(frame)
    assert len(boxes) == 1
    # the face inside astronaut_face(160) is the photo's face shifted by (-145, -36)
    offset = np.array([left - 145, top - 36])
    assert _iou(boxes[0, :4], HAAR_BOX + [*offset, 0, 0]) > 0.6, boxes
    assert np.linalg.norm(kps[0, 0] - (RIGHT_EYE + offset)) < 12


@pytest.mark.parametrize('image', ['noise', 'background', 'flat'])
def test_blazeface_finds_no_face_where_there_is_none(short, image):
    img = {'noise': noise_frames(1, 240, 320)[0], 'background': textured_background(240, 320, seed=3),
           'flat': np.full((240, 320, 3), 128, np.uint8)}[image]
    boxes, kps = short.detect_with_keypoints(img)
    assert boxes.shape == (0, 5) and kps.shape == (0, 6, 2)


def test_nms_keeps_one_box_per_face(photo, short):
    def on_face(det):
        return sum(_iou(b[:4], HAAR_BOX) > 0.3 for b in det.detect(photo))
    assert on_face(blazeface.BlazeFace('short', min_score=0.1, nms_iou=1.0)) > 5   # many anchors fire on her face
    assert on_face(blazeface.BlazeFace('short', min_score=0.1)) == 1


def test_missing_or_corrupt_model_is_clear(tmp_path, monkeypatch):
    monkeypatch.setattr(blazeface, 'MODEL_DIR', str(tmp_path))
    with pytest.raises(FileNotFoundError, match='face_models.*reinstall'):
        blazeface.BlazeFace('short')
    (tmp_path / 'face_detection_short_range.tflite').write_bytes(b'not a model')
    with pytest.raises(RuntimeError, match='TFLite model'):
        blazeface.BlazeFace('short')
    with pytest.raises(ValueError, match='short'):
        blazeface.BlazeFace('medium')


def test_models_are_package_data():
    files = {v.file for v in blazeface.VARIANTS.values()} | {'face_landmark.tflite', 'LICENSE', 'README.md'}
    assert all(os.path.isfile(os.path.join(blazeface.MODEL_DIR, f)) for f in files)
    cfg = open(os.path.join(os.path.dirname(__file__), '..', '..', 'setup.cfg')).read()
    assert 'face_models/*.tflite' in cfg and 'face_models/LICENSE' in cfg


# ----------------------------------------------------------------------------------------------- mesh
def _eyes_mouth(points468):
    return align.anchor_points(points468[landmarks.MESH_68])


def test_mesh_puts_eyes_and_mouth_where_they_are(photo, short, mesh):
    boxes, kps = short.detect_with_keypoints(photo)
    pts, presence = mesh.landmarks(photo, landmarks.roi_from_detection(boxes[0], kps[0]))
    assert pts.shape == (468, 3) and presence > 0.9
    r, l, m = _eyes_mouth(pts)
    assert np.linalg.norm(r - RIGHT_EYE) < 4 and np.linalg.norm(l - LEFT_EYE) < 4
    assert np.linalg.norm(m - MOUTH) < 6
    # the 68 subset is ordered as iBUG: jaw left of the eyes, chin (8) below the mouth, brows above the eyes
    p68 = pts[landmarks.MESH_68]
    assert p68[0, 0] < r[0] and p68[16, 0] > l[0] and p68[8, 1] > m[1] + 15 and p68[19, 1] < r[1]


def test_mesh_follows_a_rotated_face_and_says_when_there_is_none(photo, short, mesh):
    rot, m = _similar(photo, 30, 1.0, (0, 0))
    boxes, kps = short.detect_with_keypoints(rot)
    pts, presence = mesh.landmarks(rot, landmarks.roi_from_detection(boxes[0], kps[0]))
    want = align.apply(m, np.stack([RIGHT_EYE, LEFT_EYE]))
    got = _eyes_mouth(pts)[:2]
    assert presence > 0.9 and np.abs(got - want).max() < 4, (got, want)
    _, absent = mesh.landmarks(textured_background(256, 256, seed=5), landmarks.ROI(128, 128, 150))
    assert absent < 0.5


def test_roi_from_landmarks_tracks_the_face(photo, short, mesh):
    boxes, kps = short.detect_with_keypoints(photo)
    pts, _ = mesh.landmarks(photo, landmarks.roi_from_detection(boxes[0], kps[0]))
    roi = landmarks.roi_from_landmarks(pts)
    assert abs(roi.cx - 222) < 10 and abs(roi.cy - 125) < 15 and abs(roi.angle) < 0.1
    again, _ = mesh.landmarks(photo, roi)
    assert np.abs(again[:, :2] - pts[:, :2]).mean() < 2


# ----------------------------------------------------------------------------------------------- alignment
def test_alignment_matrix_lands_the_anchor_points_on_the_canonical_ones():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, (68, 2)) * 10
    pts[landmarks.RIGHT_EYE_68] += [30, 40]
    pts[landmarks.LEFT_EYE_68] += [70, 38]
    pts[landmarks.MOUTH_68] += [50, 80]
    m = align.alignment_matrix(pts, 100)
    np.testing.assert_allclose(align.apply(m, align.anchor_points(pts)), align.CANONICAL * 100, atol=1.5)
    assert align.alignment_matrix(np.zeros((68, 2)), 100) is None          # degenerate
    with pytest.raises(ValueError, match='68'):
        align.anchor_points(np.zeros((5, 2)))


@pytest.mark.parametrize('angle, scale, shift', [(20, 1.0, (30, -20)), (-15, 0.7, (-40, 25))])
def test_aligned_crops_of_a_moved_face_match_the_upright_one(photo, short, mesh, angle, scale, shift):
    moved, _ = _similar(photo, angle, scale, shift)
    crops = []
    for img in (photo, moved):
        boxes, kps = short.detect_with_keypoints(img)
        pts, _ = mesh.landmarks(img, landmarks.roi_from_detection(boxes[0], kps[0]))
        m = align.alignment_matrix(pts[landmarks.MESH_68], 96)
        crop = align.warp_face(img, m, 96)
        # the mesh run again on the aligned crop finds the eyes and mouth on the canonical points
        again, _ = mesh.landmarks(crop, landmarks.ROI(48, 48, 96 / 1.1))
        np.testing.assert_allclose(_eyes_mouth(again), align.CANONICAL * 96, atol=96 * 0.03)
        crops.append(crop.astype(np.float32))
    assert np.abs(crops[0] - crops[1]).mean() < 12                           # the same face, same place
    unaligned = [cv2.resize(img[60:190, 160:290], (96, 96)).astype(np.float32) for img in (photo, moved)]
    assert np.abs(unaligned[0] - unaligned[1]).mean() > 2 * np.abs(crops[0] - crops[1]).mean()


# ----------------------------------------------------------------------------------------------- tubelets
@pytest.fixture(scope='module')
def face_clip(tmp_path_factory):
    frames, boxes = moving_face_frames(40, 128, 160, face_size=72)
    return write_h264_mp4(tmp_path_factory.mktemp('aligned') / 'face.mp4', frames), boxes


def test_aligned_tubelets_share_one_warp_and_carry_landmarks(face_clip, short, mesh):
    clip = decode_clip(face_clip[0], 3, frame_size=32, tubelet_length=4)
    ft = faces.face_tubelets(clip, short, crop_size=64, mesh=mesh)
    assert ft.detected.all() and ft.face_mask.all() and ft.landmark_mask.all()
    assert ft.landmarks.shape == (3, 4, 68, 2) and ft.landmarks.dtype == np.float32
    for i in range(3):        # landmarks in crop units; the tubelet's mean eyes and mouth on the canonical points
        np.testing.assert_allclose(align.anchor_points(ft.landmarks[i].mean(0)), align.CANONICAL, atol=0.02)
    # the face slides ~2.4 px per frame: inside a tubelet the one warp lets it slide (x grows) ...
    shift = align.anchor_points(ft.landmarks[0, 3])[:, 0] - align.anchor_points(ft.landmarks[0, 0])[:, 0]
    assert (shift > 0.02).all(), shift
    # ... and between anchors (the face ~40 px further each time) it is put back in place
    centres = [align.anchor_points(ft.landmarks[i].mean(0)).mean(0) for i in range(3)]
    assert np.ptp(np.array(centres), axis=0).max() < 0.02
    # without alignment the landmarks are in the box crop's units and move with the face too
    flat = faces.face_tubelets(clip, short, crop_size=64, align=False, mesh=mesh)
    assert flat.landmark_mask.all()
    shift = align.anchor_points(flat.landmarks[0, 3])[:, 0] - align.anchor_points(flat.landmarks[0, 0])[:, 0]
    assert (shift > 0.02).all()


def _rig_clip(path, states, size=128):
    """An H.264 clip of the demo face (demo/face.py) showing ``states`` (expression names, one per frame)."""
    rig = demo_face.FaceRig(size)
    frames = np.stack([rig.render(demo_face.expression(e, 0.0 if e == 'neutral' else 1.0)) for e in states])
    return write_h264_mp4(path, frames)


def _steps(frames, mask):
    """Mean |difference| between consecutive existing frames of a tubelet."""
    f = frames[mask].astype(np.float32)
    return np.abs(f[1:] - f[:-1]).mean(axis=(1, 2, 3))


def test_a_still_face_gives_equal_crops(tmp_path, short, mesh):
    """Six identical neutral frames: the aligned crops differ only by the video coding noise (this was 3.6
    and 2.1 grey levels between the first crops when the mesh's region still converged inside the tubelet)."""
    clip = decode_clip(_rig_clip(tmp_path / 'still.mp4', ['neutral'] * 24), 2, frame_size=32, tubelet_length=6)
    ft = faces.face_tubelets(clip, short, crop_size=64, mesh=mesh)
    assert ft.face_mask.all() and ft.landmark_mask.all()
    for i in range(2):
        raw, crops = _steps(clip.tubelets[i], clip.tubelet_mask[i]), _steps(ft.faces[i], ft.face_mask[i])
        assert (crops <= 2 * raw + 0.05).all(), (i, raw, crops)
        assert np.abs(np.diff(ft.landmarks[i], axis=0)).max() < 2e-3      # and the same landmarks


@pytest.mark.parametrize('emotion', ['sad', 'angry'])
def test_an_expression_step_still_shows_in_the_crops(tmp_path, short, mesh, emotion):
    clip = decode_clip(_rig_clip(tmp_path / 'step.mp4', ['neutral'] * 6 + [emotion] * 6), 2, frame_size=32,
                       tubelet_length=6)                               # tubelet 0: frames 3-8, the step at 5 -> 6
    ft = faces.face_tubelets(clip, short, crop_size=64, mesh=mesh)
    raw, crops = _steps(clip.tubelets[0], clip.tubelet_mask[0]), _steps(ft.faces[0], ft.face_mask[0])
    assert crops[2] > 1.0 and crops[2] > 4 * np.delete(crops, 2).max(), crops
    assert (np.delete(crops, 2) <= 2 * np.delete(raw, 2) + 0.05).all(), (raw, crops)   # elsewhere: coding noise
    moved = np.abs(ft.landmarks[0, 3] - ft.landmarks[0, 2]).max()     # the landmarks move with the expression
    still = np.abs(ft.landmarks[0, 1] - ft.landmarks[0, 0]).max()
    assert moved > 0.005 and moved > 3 * still, (moved, still)


def test_haar_stays_selectable_and_without_mesh_nothing_changes(face_clip):
    haar = face_detector.make_detector('haar')
    assert isinstance(haar, face_detector.FaceDetector)
    assert isinstance(face_detector.make_detector('blazeface'), blazeface.BlazeFace)
    assert face_detector.make_detector('blazeface_full').model == 'full'
    with pytest.raises(ValueError, match='blazeface.*haar'):
        face_detector.make_detector('mtcnn')
    clip = decode_clip(face_clip[0], 2, frame_size=32, tubelet_length=2)
    ft = faces.face_tubelets(clip, haar, crop_size=32, align=False, landmarks=False)
    assert ft.detected.all() and not ft.landmark_mask.any() and not ft.landmarks.any()
    aligned = faces.face_tubelets(clip, haar, crop_size=32)    # Haar boxes + mesh: aligned too
    assert aligned.landmark_mask.all()


class _FalseAlarm:
    """A detector that always 'finds' a face in the middle of the frame."""

    def detect(self, rgb):
        h, w = rgb.shape[:2]
        return np.array([[w / 4, h / 4, w / 2, h / 2, 0.6]], np.float32)


def test_the_mesh_drops_detector_false_alarms(tmp_path, mesh):
    frames = np.stack([textured_background(96, 128, seed=7)] * 8)
    clip = decode_clip(write_h264_mp4(tmp_path / 'sky.mp4', frames), 2, frame_size=32, tubelet_length=2)
    kept = faces.face_tubelets(clip, _FalseAlarm(), crop_size=32, verify=False, mesh=mesh)
    assert kept.face_mask.all() and kept.detected.all() and not kept.landmark_mask.any()
    dropped = faces.face_tubelets(clip, _FalseAlarm(), crop_size=32, mesh=mesh)
    assert not dropped.any_face and not dropped.detected.any() and not dropped.boxes.any()


# ----------------------------------------------------------------------------------------------- config
def test_config_chooses_the_detector_and_alignment():
    from microemo_jax.config import ConfigError, load_config
    from microemo_jax.data.records.clip_processor import settings_from_config
    spec = os.path.join(os.path.dirname(__file__), '..', '..', 'configs', 'emer.py') + ':demo'
    cfg = load_config(spec)
    s = settings_from_config(cfg, 'folder', 'llm', 'qf')
    assert (s.face_detector, s.align_faces) == ('blazeface', True)
    s = settings_from_config(load_config(spec, ['data.face_detector=haar', 'data.align_faces=False']),
                             'folder', 'llm', 'qf')
    assert (s.face_detector, s.align_faces) == ('haar', False)
    with pytest.raises(ConfigError, match="data.face_detector='mtcnn' must be 'blazeface'"):
        load_config(spec, ['data.face_detector=mtcnn'])


def test_flipped_landmarks_are_the_landmarks_of_the_flipped_face(photo, short, mesh):
    def points(img):
        boxes, kps = short.detect_with_keypoints(img)
        pts, _ = mesh.landmarks(img, landmarks.roi_from_detection(boxes[0], kps[0]))
        return pts[landmarks.MESH_68, :2]
    mirrored = np.ascontiguousarray(photo[:, ::-1])
    flipped = landmarks.flip_landmarks(points(photo), width=photo.shape[1])
    err = np.linalg.norm(flipped - points(mirrored), axis=-1)
    assert np.median(err) < 3 and err.max() < 12, err        # point i is the same part of the face
    assert sorted(landmarks.MIRROR_68) == list(range(68))
    np.testing.assert_array_equal(landmarks.MIRROR_68[landmarks.MIRROR_68], np.arange(68))


# ----------------------------------------------------------------------------------------------- pipeline
def test_landmarks_reach_the_batch_and_flip_with_their_crops():
    from microemo_jax.data import pipeline
    from microemo_jax.data.augment import ClipAugment
    from microemo_jax.data.shapes import DataShapes, batch_contract
    from tests.support.records import make_record
    rec = make_record('lm', num_frames=3, num_crops=2)
    shapes = DataShapes(num_frames=4, image_size=32, num_crops=3, face_size=32, timestamp_tokens=5,
                        num_mel_bins=16, mel_frames=12, max_utterances=2, seq_len=40, video_tokens=8,
                        audio_tokens=4)

    def example(flip):
        out = {k: np.zeros(shape, dtype) for k, (shape, dtype) in batch_contract(shapes).items()}
        pipeline.fill_example(rec, shapes, ClipAugment(flip=flip), out)
        return out
    plain, flipped = example(False), example(True)
    lms, mask = rec['face_landmarks'].astype(np.float32), rec['face_landmark_mask']
    np.testing.assert_array_equal(plain['face_landmark_mask'][:3, :2], mask)
    assert not plain['face_landmark_mask'][3:].any() and not plain['face_landmark_mask'][:, 2:].any()
    np.testing.assert_array_equal(plain['face_landmarks'][:3, :2][mask], lms[mask])
    # a mirrored crop: x -> 1 - x, and the right eye's points become the left eye's
    np.testing.assert_allclose(flipped['face_landmarks'][:3, :2][mask],
                               landmarks.flip_landmarks(lms)[mask], atol=1e-6)
    got = flipped['face_landmarks'][:3, :2][mask]
    np.testing.assert_allclose(got[:, 42:48, 0], 1 - lms[mask][:, 36:42, 0][:, [3, 2, 1, 0, 5, 4]], atol=1e-6)
