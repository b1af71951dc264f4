"""The face detectors ``data.face_detector`` names, behind one interface: ``detect(rgb)`` -> (N, 5) float32
x, y, w, h, score boxes in input pixels, best first.

'blazeface' / 'blazeface_full' are MediaPipe's BlazeFace models run by OpenCV (blazeface.py; they also give
eye/nose/mouth/ear keypoints); 'haar' is OpenCV's frontal-face cascade (``FaceDetector``). All run offline:
their models ship with the packages.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from microemo_jax.data.faces.blazeface import BlazeFace

DETECTORS = ('blazeface', 'blazeface_full', 'haar')


def make_detector(name: str = 'blazeface'):
    """The face detector ``data.face_detector`` names: 'blazeface' (MediaPipe short-range BlazeFace, faces
    within ~2 m: talking heads), 'blazeface_full' (the full-range model, small faces too, slower) or 'haar'
    (OpenCV's frontal-face cascade, the old default). All return (N, 5) x, y, w, h, score boxes from
    ``detect``; the BlazeFace ones also give eye/nose/mouth/ear keypoints (``detect_with_keypoints``)."""
    if name == 'haar':
        return FaceDetector()
    if name in ('blazeface', 'blazeface_full'):
        return BlazeFace('short' if name == 'blazeface' else 'full')
    raise ValueError(f"face detector must be one of {DETECTORS}, got {name!r}")


class FaceDetector:
    """OpenCV frontal-face Haar cascade, returning (N, 5) boxes x, y, w, h, score in input pixels.

    The score is the cascade's final-stage confidence (``detectMultiScale3(outputRejectLevels=True)``
    level weight; ~5 for a clear frontal face, < 2 for most false alarms). Faces smaller than ``min_face``
    x the shorter image side are ignored, so the image is first downscaled until that smallest face is the
    cascade's 24 px window (and the longer side is at most ``max_side``): nothing is lost, and the cost
    falls with the square of the scale. Talking-head faces are large: the default 0.15 keeps faces down to
    ~1/7 of the frame height.
    """

    def __init__(self, cascade_path: str | None = None, *, min_face: float = 0.15, scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_score: float = 1.0, max_side: int = 384):
        if cascade_path is None:
            cascade_path = os.path.join(cv2.data.haarcascades, 'haarcascade_frontalface_default.xml')
        if not os.path.isfile(cascade_path):
            raise FileNotFoundError(
                f"Haar cascade {cascade_path!r} not found: it ships with opencv-python(-headless) in "
                f"cv2.data.haarcascades; reinstall that package or pass cascade_path=")
        try:
            cascade = cv2.CascadeClassifier(cascade_path)
        except (cv2.error, SystemError) as e:
            raise RuntimeError(f"OpenCV could not load the Haar cascade {cascade_path!r}: {e}") from None
        if cascade.empty():
            raise RuntimeError(f"OpenCV could not load the Haar cascade {cascade_path!r} (corrupt XML?)")
        self._cv2, self._cascade = cv2, cascade
        self.min_face, self.scale_factor, self.min_neighbors = min_face, scale_factor, min_neighbors
        self.min_score, self.max_side = min_score, max_side

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """Faces in one RGB (or grey) uint8 image, best score first: float32 (N, 5) x, y, w, h, score."""
        cv2 = self._cv2
        img = np.asarray(rgb)
        if img.dtype != np.uint8 or img.ndim not in (2, 3):
            raise ValueError(f"detect() wants a uint8 (H, W[, 3]) image, got {img.dtype}{img.shape}")
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
        h, w = grey.shape
        window = 24                                   # the cascade's training window
        scale = min(1.0, self.max_side / max(h, w), window / max(self.min_face * min(h, w), 1e-6))
        if scale < 1.0:
            grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                              interpolation=cv2.INTER_AREA)
        side = max(window, int(self.min_face * min(grey.shape)))
        if min(grey.shape) < side:
            return np.zeros((0, 5), np.float32)
        boxes, _, weights = self._cascade.detectMultiScale3(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side),
            outputRejectLevels=True)
        if len(boxes) == 0:
            return np.zeros((0, 5), np.float32)
        out = np.concatenate([np.asarray(boxes, np.float32) / scale,
                              np.asarray(weights, np.float32).reshape(-1, 1)], axis=1)
        out = out[out[:, 4] >= self.min_score]
        return out[np.argsort(-out[:, 4], kind='stable')]
