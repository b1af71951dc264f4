"""Face tubelets for the micro-expression branch: the speaker's face, same box over K consecutive frames.

Two sources, one output (``FaceTubelets``):
  * ``face_tubelets(clip, detector)`` detects faces on each anchor frame of a ``DecodedClip`` (a detector of
    face_detector.py: MediaPipe's BlazeFace run by OpenCV, or OpenCV's Haar cascade), picks the speaker's
    track across anchors (face_track.py), runs the 468-point face mesh (landmarks.py) on each of the
    anchor's K frames and either aligns each crop to a canonical face from its eyes and mouth (align.py:
    consecutive crops then differ by expression, not head motion) or, with ``align=False``, crops the same
    margin-expanded square from the K frames (the pre-alignment behaviour);
  * ``load_openface_tubelets`` maps a dataset's OpenFace crops (MER2025 ``openface_face/NAME/NAME.npy``)
    onto the same anchors by time (already aligned by OpenFace; the mesh gives their landmarks).

Per clip with T' anchors and K frames per tubelet:
    faces      uint8 (T', K, crop, crop, 3)  RGB crops (zeros where face_mask is False)
    face_mask  bool (T', K)     valid crops, packed at the front of each tubelet
    boxes      float32 (T', 4)  x, y, w, h of the speaker's face in source-frame pixels (upright frame at
                                native resolution, see video.VideoInfo); zeros when unknown
    detected   bool (T',)       True where the detector saw the face (False: interpolated or none)
    landmarks  float32 (T', K, 68, 2)  the 68-point subset of the face mesh (landmarks.MESH_68) in crop
                                coordinates, in units of the crop side (0..1, x right, y down); zeros where
                                landmark_mask is False
    landmark_mask bool (T', K)  where the mesh found the face in that crop
"""
from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np

from microemo_jax.data.faces import align as align_lib, landmarks as lm_lib, spotting
from microemo_jax.data.faces.landmarks import FaceMesh
from microemo_jax.data.faces.track import detect_speaker, matching_detection
from microemo_jax.data.video import DecodedClip, MediaError

FACE_REASONS = ('missing_file', 'corrupt_faces')
NUM_LANDMARKS = 68


@dataclasses.dataclass(frozen=True)
class FaceTubelets:
    faces: np.ndarray
    face_mask: np.ndarray
    boxes: np.ndarray
    detected: np.ndarray
    landmarks: np.ndarray | None = None        # None: zeros (no landmarks)
    landmark_mask: np.ndarray | None = None
    times: np.ndarray | None = None            # (T', K) seconds of each crop (OpenFace crops: by their index)

    def __post_init__(self):
        n, k = self.face_mask.shape
        if self.landmarks is None:
            object.__setattr__(self, 'landmarks', np.zeros((n, k, NUM_LANDMARKS, 2), np.float32))
        if self.landmark_mask is None:
            object.__setattr__(self, 'landmark_mask', np.zeros((n, k), bool))

    @property
    def any_face(self) -> bool:
        """Whether at least one crop exists (prepare skips clips without, when faces are required)."""
        return bool(self.face_mask.any())


_MESH = None


def default_mesh():
    """One shared FaceMesh per process (loading the model costs ~50 ms)."""
    global _MESH
    if _MESH is None:
        _MESH = FaceMesh()
    return _MESH


# ----------------------------------------------------------------------------------------------- cropping
def crop_box(box, width: int, height: int, margin: float) -> tuple[int, int, int, int]:
    """The square (x0, y0, x1, y1) around ``box`` grown by ``margin`` x its side on every side, moved inside
    the image (and shrunk only if the image is smaller than the square)."""
    x, y, w, h = (float(v) for v in box[:4])
    side = max(w, h) * (1.0 + 2.0 * margin)
    side = max(1.0, min(side, float(width), float(height)))
    cx, cy = x + w / 2, y + h / 2
    x0 = min(max(cx - side / 2, 0.0), width - side)
    y0 = min(max(cy - side / 2, 0.0), height - side)
    s = max(1, int(round(side)))
    x0, y0 = int(round(x0)), int(round(y0))
    x0, y0 = min(max(x0, 0), width - s), min(max(y0, 0), height - s)
    return x0, y0, x0 + s, y0 + s


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] == size and img.shape[1] == size:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def face_tubelets(clip: DecodedClip, detector, *, crop_size: int, margin: float = 0.25, max_gap: int = 2,
                  align: bool = True, landmarks: bool = True, verify: bool = True, mesh=None) -> FaceTubelets:
    """Detect on each anchor frame, track the speaker, then per anchor run the face mesh on its K frames
    (all through one region, settled on the first frame: landmarks.FaceMesh.tubelet) and cut the crops.

    ``align=True``: the tubelet's crops share one warp that puts the mean of their eyes and mouth on the
    canonical points (align.tubelet_matrices): a still face gives equal crops, an expression shows as it
    is, and head motion between anchors is cancelled; a tubelet without any mesh falls back to the box
    crop below. ``align=False``: the same square box (the
    tracked face box grown by ``margin`` x its side on each side, 0.25: the crop is 1.5x the face, kept
    inside the frame) for all K frames. ``landmarks=False`` (with ``align=False``) skips the mesh entirely.
    ``verify`` (when the mesh runs): an anchor where the mesh finds no face in any of its K frames is dropped
    as a detector false alarm (BlazeFace fires on ~5 % of cartoon-sky frames at its 0.5 threshold; the mesh's
    presence score rejects them, see benchmarks/README.md). ``mesh``: a landmarks.FaceMesh (default: one
    shared per process).

    Detection runs on the tubelet frames (longer side <= the clip's tubelet_max_side); boxes are returned in
    source-frame pixels, landmarks in crop units (see the module docstring).
    """
    tub, tmask = clip.tubelets, clip.tubelet_mask
    n, k, th, tw = tub.shape[:4]
    scale = clip.tubelet_scale
    use_mesh = align or landmarks
    if use_mesh and mesh is None:
        mesh = default_mesh()
    dets, kps, track = detect_speaker(clip, detector, max_gap=max_gap)
    match = matching_detection(dets, track)
    detected = match >= 0

    faces = np.zeros((n, k, crop_size, crop_size, 3), np.uint8)
    mask = np.zeros((n, k), bool)
    boxes = np.zeros((n, 4), np.float32)
    lms = np.zeros((n, k, NUM_LANDMARKS, 2), np.float32)
    lm_mask = np.zeros((n, k), bool)
    for i, box in enumerate(track):
        if box is None:
            continue
        box_t = np.asarray(box, np.float64) / scale              # in tubelet-frame pixels
        x0, y0, x1, y1 = crop_box(box_t, tw, th, margin)
        count = int(tmask[i].sum())
        points = [None] * count
        if use_mesh and count:
            if match[i] >= 0 and kps[i] is not None:
                roi = lm_lib.roi_from_detection(box_t, kps[i][match[i]])
            else:
                roi = lm_lib.roi_from_box(box_t)
            found, _ = mesh.tubelet([tub[i, j] for j in range(count)], roi)
            points = [None if p is None else p[lm_lib.MESH_68, :2] for p in found]
            if verify and all(p is None for p in points):
                detected[i] = False
                continue
        boxes[i] = box
        mats = align_lib.tubelet_matrices(points, crop_size) if align else [None] * count
        for j in range(count):
            m = mats[j]
            if m is not None:
                faces[i, j] = align_lib.warp_face(tub[i, j], m, crop_size)
                if points[j] is not None:
                    lms[i, j] = align_lib.apply(m, points[j]) / crop_size
                    lm_mask[i, j] = True
            else:
                faces[i, j] = _resize(tub[i, j, y0:y1, x0:x1], crop_size)
                if points[j] is not None:
                    lms[i, j] = (points[j] - [x0, y0]) / float(x1 - x0)
                    lm_mask[i, j] = True
            mask[i, j] = True
    return FaceTubelets(faces=faces, face_mask=mask, boxes=boxes, detected=detected, landmarks=lms,
                        landmark_mask=lm_mask)


# ----------------------------------------------------------------------------------------------- OpenFace
def _as_rgb_uint8(arr: np.ndarray, path: str, channel_order: str) -> np.ndarray:
    """(N, H, W[, C]) numeric -> uint8 (N, H, W, 3) RGB, or MediaError('corrupt_faces')."""
    if arr.dtype.kind not in 'uif' or arr.ndim not in (3, 4) or min(arr.shape[1:3]) < 1:
        raise MediaError('corrupt_faces', path, f"expected face crops (N, H, W[, 3]) of numbers, got "
                         f"{arr.dtype}{arr.shape}")
    if arr.ndim == 4 and arr.shape[-1] not in (1, 3, 4):
        raise MediaError('corrupt_faces', path, f"face crops have {arr.shape[-1]} channels (want 1, 3 or 4)")
    if arr.dtype.kind == 'f':
        if not np.isfinite(arr).all():
            raise MediaError('corrupt_faces', path, "face crops contain NaN or inf")
        if arr.size and arr.max() <= 1.0 + 1e-6 and arr.min() >= 0.0:
            arr = arr * 255.0                        # floats in [0, 1]
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise MediaError('corrupt_faces', path, f"integer face crops outside 0..255 ({arr.dtype})")
        arr = arr.astype(np.uint8)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.shape[-1] == 1:
        return np.repeat(arr, 3, axis=-1)
    arr = arr[..., :3]
    return np.ascontiguousarray(arr[..., ::-1]) if channel_order == 'bgr' else np.ascontiguousarray(arr)


def load_openface_tubelets(npy_path: str | os.PathLike, timestamps, duration: float, *, tubelet_length: int,
                           crop_size: int, channel_order: str = 'bgr', mesh=None, apex: bool = False) -> FaceTubelets:
    """Dataset-shipped OpenFace crops as face tubelets on the clip's anchors.

    OpenFace writes one aligned crop per frame in which it found a face; MERTools stacks them with
    ``cv2.imread`` into ``NAME.npy``, hence BGR by default (``channel_order='rgb'`` for arrays saved as RGB;
    grey (N, H, W) and float arrays are accepted). Anchor time t maps to crop floor(t / duration * N) and
    the tubelet takes the K crops from there (fewer at the end: masked); with ``apex`` it takes the K crops
    with the most change between them before the next anchor's crop (spotting.apex_starts on the aligned
    crops: micro-expression spotting). ``times`` holds each crop's time, index / N x duration. The crops are already aligned, so
    ``boxes`` (source-frame positions) are unknown: zeros. With a landmarks.FaceMesh as ``mesh``, the landmarks
    of each crop (the whole crop as the mesh's region) fill ``landmarks``. An empty array means "no face in this clip":
    an all-False mask, not an error. A file that is not a numeric array of crops raises
    MediaError('corrupt_faces').
    """
    path = os.fspath(npy_path)
    if channel_order not in ('bgr', 'rgb'):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    if not os.path.isfile(path):
        raise MediaError('missing_file', path, "OpenFace crops file not found")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise MediaError('corrupt_faces', path, f"not a readable .npy array ({e})") from None
    if not isinstance(arr, np.ndarray):
        raise MediaError('corrupt_faces', path, "expected a single .npy array, found an archive")
    timestamps = np.asarray(timestamps, np.float64).reshape(-1)
    n_anchor, k = len(timestamps), tubelet_length
    faces = np.zeros((n_anchor, k, crop_size, crop_size, 3), np.uint8)
    mask = np.zeros((n_anchor, k), bool)
    boxes = np.zeros((n_anchor, 4), np.float32)
    if arr.size == 0 or arr.shape[0] == 0:
        return FaceTubelets(faces, mask, boxes, np.zeros(n_anchor, bool), times=np.zeros((n_anchor, k), np.float32))
    crops = _as_rgb_uint8(arr, path, channel_order)
    n = len(crops)
    if not duration or duration <= 0:
        raise ValueError(f"{path}: duration must be > 0 to map crops to times, got {duration}")
    start = np.clip(np.floor(timestamps / duration * n), 0, n - 1).astype(int)
    if apex:
        small = np.stack([_resize(c, 32).astype(np.float32) for c in crops])
        motion = np.concatenate([[0.0], np.abs(np.diff(small, axis=0)).mean(axis=(1, 2, 3))])
        start = spotting.apex_starts(motion, start, n, k) if np.all(np.diff(start) > 0) else start
    lms = np.zeros((n_anchor, k, NUM_LANDMARKS, 2), np.float32)
    lm_mask = np.zeros((n_anchor, k), bool)
    times = np.zeros((n_anchor, k), np.float32)
    for i, s in enumerate(start):
        for j in range(min(k, n - s)):
            faces[i, j] = _resize(crops[s + j], crop_size)
            mask[i, j] = True
            times[i, j] = (s + j) / n * duration
        if mesh is not None:
            side = float(crop_size)
            found, _ = mesh.track(list(faces[i, :int(mask[i].sum())]), lm_lib.ROI(side / 2, side / 2, side))
            for j, p in enumerate(found):
                if p is not None:
                    lms[i, j] = p[lm_lib.MESH_68, :2] / side
                    lm_mask[i, j] = True
    return FaceTubelets(faces, mask, boxes, mask[:, 0].copy(), lms, lm_mask, times)
