"""MediaPipe's 468-point face-mesh landmark model run with OpenCV's TFLite importer (no TensorFlow).

The model (``face_models/face_landmark.tflite``, Apache-2.0) reads a 192 x 192 RGB crop in [0, 1] of a
rotated square region of interest (ROI) around the face and returns 468 (x, y, z) points in crop pixels
plus a face-presence logit. The ROI follows MediaPipe's face-mesh graph: from a detection, a square 1.5x
the face box centred on it and rotated so that the eyes (keypoints 0 -> 1) are horizontal; from the previous
frame's landmarks, the same around their extent, rotated by the outer eye corners (33 -> 263). OpenCV
returns only the raw tensors, so the ROI warp and the mapping back to image pixels are done here
(``cv2.warpAffine`` with the ROI's affine matrix).

    mesh = FaceMesh()
    roi = roi_from_detection(box, keypoints)            # or roi_from_box(box), roi_from_landmarks(points)
    points, presence = mesh.landmarks(rgb, roi)         # (468, 3) x, y in image pixels, z; presence in [0, 1]
    points[MESH_68]                                     # the 68-point (iBUG 300-W) subset, see MESH_68
"""
from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from microemo_jax.data.faces.blazeface import load_tflite

INPUT_SIZE = 192
ROI_SCALE = 1.5
SETTLE_STEPS = 3        # FaceMesh.settle: at most this many re-centrings of the ROI on one frame
SETTLE_TOL = 0.02       # ... until the ROI moves by less than this fraction of its side

# Face-mesh indices of the 68 iBUG 300-W points (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, outer lips
# 48-59, inner lips 60-67; "right" = the person's right, image left in a frontal view). The usual mapping
# from the MediaPipe canonical face model; landmark displacements on these 68 are the compact per-crop
# geometry the micro-expression branch can read.
MESH_68 = np.array([
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,   # jaw
    71, 63, 105, 66, 107, 336, 296, 334, 293, 301,                                      # brows
    168, 197, 5, 4, 75, 97, 2, 326, 305,                                                # nose
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,                          # eyes
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,                                # outer lips
    78, 82, 13, 312, 308, 317, 14, 87,                                                  # inner lips
], np.int64)
RIGHT_EYE_68, LEFT_EYE_68, MOUTH_68 = slice(36, 42), slice(42, 48), slice(48, 60)


def _mirror_68() -> np.ndarray:
    pairs = [(i, 16 - i) for i in range(8)] + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (31, 35), (32, 34),
             (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46), (48, 54), (49, 53), (50, 52), (55, 59),
             (56, 58), (60, 64), (61, 63), (65, 67)]
    perm = np.arange(68)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


# Which of the 68 points a point becomes in the mirror image (the person's right eye becomes the left one).
MIRROR_68 = _mirror_68()


def flip_landmarks(points, width: float = 1.0) -> np.ndarray:
    """The 68 landmarks (..., 68, 2) of the horizontally flipped image: x -> width - x, and each point
    renamed as its mirror twin (MIRROR_68), so that point i still means the same part of the face."""
    p = np.asarray(points)[..., MIRROR_68, :].copy()
    p[..., 0] = width - p[..., 0]
    return p


@dataclasses.dataclass(frozen=True)
class ROI:
    """A rotated square in image pixels: centre, side, and the angle (radians) of its x axis in the image
    (y down: a positive angle turns the x axis towards +y)."""
    cx: float
    cy: float
    size: float
    angle: float = 0.0

    def matrix(self, out_size: int) -> np.ndarray:
        """2 x 3 affine matrix from ROI pixels (0..out_size) to image pixels."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        k = self.size / out_size
        a = np.array([[c * k, -s * k], [s * k, c * k]], np.float64)
        centre = np.array([self.cx, self.cy]) - a @ np.array([out_size / 2, out_size / 2])
        return np.concatenate([a, centre[:, None]], axis=1)


def roi_from_box(box, scale: float = ROI_SCALE) -> ROI:
    """An upright square ``scale`` x the longer side of an (x, y, w, h) box, centred on it (Haar boxes and
    interpolated track boxes have no keypoints to turn it)."""
    x, y, w, h = (float(v) for v in box[:4])
    return ROI(x + w / 2, y + h / 2, max(w, h) * scale, 0.0)


def roi_from_detection(box, keypoints, scale: float = ROI_SCALE) -> ROI:
    """MediaPipe's detection-to-ROI: the box's square, turned so that the eyes (keypoints 0 -> 1) are level."""
    r = roi_from_box(box, scale)
    (x0, y0), (x1, y1) = np.asarray(keypoints, np.float64)[:2]
    return dataclasses.replace(r, angle=math.atan2(y1 - y0, x1 - x0))


def roi_from_landmarks(points, scale: float = ROI_SCALE) -> ROI:
    """The next frame's ROI from this frame's mesh: level with the outer eye corners (33 -> 263), around the
    points' extent in that rotated frame, ``scale`` x its longer side."""
    p = np.asarray(points, np.float64)[:, :2]
    (x0, y0), (x1, y1) = p[33], p[263]
    angle = math.atan2(y1 - y0, x1 - x0)
    c, s = math.cos(angle), math.sin(angle)
    rot = p @ np.array([[c, -s], [s, c]])           # coordinates along the rotated axes
    lo, hi = rot.min(axis=0), rot.max(axis=0)
    mid = (lo + hi) / 2
    centre = np.array([[c, -s], [s, c]]) @ mid       # back to image axes
    return ROI(float(centre[0]), float(centre[1]), float(max(hi - lo)) * scale, angle)


class FaceMesh:
    """The 468-point face-mesh model; ``landmarks(rgb, roi)`` -> ((468, 3) float32 image-pixel x, y and z
    in the same scale, presence probability). ``min_presence`` is what ``track`` treats as a face."""

    def __init__(self, *, min_presence: float = 0.5):
        self._cv2 = cv2
        self._net, self._outputs = load_tflite('face_landmark.tflite')
        self.min_presence = float(min_presence)

    def landmarks(self, rgb: np.ndarray, roi: ROI) -> tuple[np.ndarray, float]:
        cv2 = self._cv2
        img = np.asarray(rgb)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"landmarks() wants a uint8 (H, W, 3) RGB image, got {img.dtype}{img.shape}")
        m = roi.matrix(INPUT_SIZE)
        crop = cv2.warpAffine(img, m, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        blob = (crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        self._net.setInput(np.ascontiguousarray(blob))
        outs = self._net.forward(self._outputs)
        flat = [np.asarray(o, np.float32).reshape(-1) for o in outs]
        pts = next(o for o in flat if o.size == 468 * 3).reshape(468, 3)
        logit = float(next(o for o in flat if o.size == 1)[0])
        presence = 1.0 / (1.0 + math.exp(-min(max(logit, -60.0), 60.0)))
        xy = pts[:, :2] @ m[:, :2].T + m[:, 2]
        z = pts[:, 2:] * (roi.size / INPUT_SIZE)
        return np.concatenate([xy, z], axis=1).astype(np.float32), presence

    def settle(self, frame, roi: ROI, *, max_iter: int = SETTLE_STEPS,
               tol: float = SETTLE_TOL) -> tuple[np.ndarray | None, float, ROI]:
        """Landmarks of one frame after re-centring the ROI on the frame's own mesh until it stops moving.

        A detector's ROI is not where the mesh puts the face (a 5-10 % different size and centre), and the
        mesh's points depend on its ROI: MediaPipe converges over a video's first frames. Here one frame is
        iterated instead (its side changes by ~5 %, 2 %, 0.7 % in the first steps; a tubelet reads all its frames through the one ROI, so its landmarks agree with each other whatever is left). Returns (points or None,
        presence, the settled ROI; the given one when no face is found)."""
        pts, presence = self.landmarks(frame, roi)
        if presence < self.min_presence:
            return None, presence, roi
        for _ in range(max_iter):
            nxt = roi_from_landmarks(pts)
            moved = max(math.hypot(nxt.cx - roi.cx, nxt.cy - roi.cy), abs(nxt.size - roi.size),
                        abs(nxt.angle - roi.angle) * roi.size / 2)
            if moved < tol * roi.size:
                break
            new_pts, new_presence = self.landmarks(frame, nxt)
            if new_presence < self.min_presence:
                break
            roi, pts, presence = nxt, new_pts, new_presence
        return pts, presence, roi

    def tubelet(self, frames, roi: ROI) -> tuple[list[np.ndarray | None], np.ndarray]:
        """Landmarks of a tubelet's consecutive frames, all read through one ROI: the one ``settle`` finds
        on the first frame. One ROI makes the points a function of the picture alone, so a still face gives
        the same points in every frame (a ROI that follows the previous frame's mesh moves by its noise,
        and the points with it). A frame where the face is not found in it is retried with a ROI from the
        last frame that had one (a fast head movement). Returns (one (468, 3) array or None per frame,
        presences)."""
        out, presences, fixed, last = [], [], None, None
        for frame in frames:
            if fixed is None:
                pts, p, settled = self.settle(frame, roi)
                fixed = settled if pts is not None else None
            else:
                pts, p = self.landmarks(frame, fixed)
                if p < self.min_presence and last is not None:
                    pts, p = self.landmarks(frame, roi_from_landmarks(last))
                if p < self.min_presence:
                    pts = None
            presences.append(p)
            out.append(pts)
            last = pts if pts is not None else last
        return out, np.asarray(presences, np.float32)

    def track(self, frames, roi: ROI) -> tuple[list[np.ndarray | None], np.ndarray]:
        """Landmarks on consecutive frames, each frame's ROI from the previous frame's mesh (the first from
        ``roi``; after a miss, ``roi`` again). Returns one (468, 3) array or None (presence below
        ``min_presence``) per frame, and the presences."""
        out, presences, current = [], [], roi
        for frame in frames:
            pts, p = self.landmarks(frame, current)
            presences.append(p)
            if p >= self.min_presence:
                out.append(pts)
                current = roi_from_landmarks(pts)
            else:
                out.append(None)
                current = roi
        return out, np.asarray(presences, np.float32)
