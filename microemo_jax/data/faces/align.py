"""Face alignment: a similarity transform (rotation, uniform scale, shift) that puts the eyes and the mouth
of a face on fixed points of the crop, so that what changes between consecutive crops of a tubelet is the
expression, not the head's motion.

Three points are aligned, from the 68-point subset of the face mesh (landmarks.MESH_68): the centres of the
two eyes (mean of each eye's six contour points) and of the mouth (mean of the twelve outer-lip points; an
opening mouth moves both lips, so its centre moves little). The fit is a least-squares similarity
(``skimage.transform.SimilarityTransform``, Umeyama) onto ``CANONICAL`` (fractions of the crop side).
The canonical points are where a frontal, upright face sits in the unaligned crop (the detector's square
box grown by faces.face_tubelets' default 25 % margin), so that turning alignment off for the ablation
changes the geometry of the crops as little as possible.

    m = alignment_matrix(points68, crop_size)      # 2 x 3, image pixels -> crop pixels (None: degenerate)
    ms = tubelet_matrices([points68_frame0, ...], crop_size)   # a tubelet's crops: one warp (see there)
    crop = warp_face(frame, m, crop_size)
    crop_points = apply(m, points68) / crop_size  # where the landmarks land in the crop, in [0, 1] units
"""
from __future__ import annotations

import cv2
import numpy as np
from skimage.transform import SimilarityTransform

from microemo_jax.data.faces.landmarks import LEFT_EYE_68, MOUTH_68, RIGHT_EYE_68

# (person's) right eye, left eye, mouth centre, as fractions of the crop side (x right, y down).
CANONICAL = np.array([[0.34, 0.40], [0.66, 0.40], [0.50, 0.70]], np.float64)


def anchor_points(points68) -> np.ndarray:
    """(3, 2) right-eye, left-eye and mouth centres of (68, >=2) landmarks."""
    p = np.asarray(points68, np.float64)[:, :2]
    if p.shape != (68, 2):
        raise ValueError(f"anchor_points wants the 68-point subset (68, 2+), got {np.shape(points68)}")
    return np.stack([p[RIGHT_EYE_68].mean(0), p[LEFT_EYE_68].mean(0), p[MOUTH_68].mean(0)])


def alignment_matrix(points68, crop_size: int) -> np.ndarray | None:
    """2 x 3 float64 matrix from image pixels to the crop's pixels that puts the anchor points on
    ``CANONICAL * crop_size``; None when the points are degenerate (coincident or non-finite)."""
    src = anchor_points(points68)
    if not np.isfinite(src).all() or np.linalg.norm(src[1] - src[0]) < 1e-3:
        return None
    tf = SimilarityTransform.from_estimate(src, CANONICAL * float(crop_size))
    if not tf:
        return None
    m = np.asarray(tf.params, np.float64)[:2]
    return m if np.isfinite(m).all() else None


def tubelet_matrices(points, crop_size: int) -> list[np.ndarray | None]:
    """The crop matrices of a tubelet's K frames from their 68 landmarks (None where not found): one warp
    for the whole tubelet, from the mean of its frames' landmarks (all None when there are none, or they
    are degenerate).

    Why one: the face mesh is a holistic regressor, so an expression moves even its "rigid" points (eye
    corners, nose bridge: 0.5-2.8 px on the demo's 47 px eye distance for a full expression), and every
    frame's points carry coding noise (~0.01 px, which moves a textured crop by ~0.1 grey level). Warping
    each frame by its own points turns both into motion of the whole crop, as large as the expression
    itself. With one warp, a still face gives equal crops and an expression shows as it is, as in the
    micro-expression datasets' practice of aligning a sequence once (on its first frame). The head's
    motion inside a tubelet (K frames: ~0.15 s) stays in the crops; between tubelets it is cancelled."""
    valid = [np.asarray(p, np.float64)[:, :2] for p in points if p is not None]
    m = alignment_matrix(np.mean(valid, axis=0), crop_size) if valid else None
    return [m] * len(points) if m is not None else [None] * len(points)


def apply(m: np.ndarray, points) -> np.ndarray:
    """Points (N, >=2) through a 2 x 3 affine matrix -> (N, 2)."""
    p = np.asarray(points, np.float64)[:, :2]
    return p @ np.asarray(m)[:, :2].T + np.asarray(m)[:, 2]


def warp_face(frame: np.ndarray, m: np.ndarray, crop_size: int) -> np.ndarray:
    """The aligned (crop_size, crop_size, 3) crop of ``frame`` (outside the frame: edge pixels repeated,
    so a face at the border does not get a black band that would look like motion)."""
    m = np.asarray(m, np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 0.5:                          # warpAffine has no area filter: shrink first so it does not alias
        f = int(0.5 / scale)
        h, w = frame.shape[:2]
        small = cv2.resize(frame, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
        m = m.copy()
        m[:, 0] *= w / small.shape[1]
        m[:, 1] *= h / small.shape[0]
        frame = small
    return cv2.warpAffine(np.ascontiguousarray(frame), m, (crop_size, crop_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
