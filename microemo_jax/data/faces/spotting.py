"""Micro-expression spotting: where, between two global anchors, the speaker's face moves most.

A micro-expression lasts 1/25 to 1/3 s and mostly falls between sparsely sampled frames, so a tubelet that
starts at each anchor misses most of them. The field spots them first (the MEGC challenges' spotting
task; e.g. Moilanen et al. 2014's appearance-based feature differences): it looks for rapid facial
movements over every frame. Here, per interval between consecutive anchors, the K-frame window with the
most facial motion wins, motion being the mean absolute grey-level change of the face between consecutive
frames: the face region comes from the speaker's track (detections on the anchors, interpolated to every
frame), compared on the small grey pictures that ``video.decode_clip(motion_side=...)`` keeps of every
frame. ``video.move_tubelets`` then cuts the tubelets there.

    clip = decode_clip(path, T, frame_size=..., tubelet_length=K, motion_side=MOTION_SIDE)
    clip = move_tubelets(path, clip, spot_tubelets(clip, detector))

A face that does not move keeps its tubelets at the anchors (ties go to the earliest window), as does a
clip without a face.
"""
from __future__ import annotations

import cv2
import numpy as np

from microemo_jax.data.faces.track import detect_speaker

MOTION_SIDE = 256    # longer side of the grey pictures spotting compares (a 720p face of 200 px -> 40 px)
PATCH = 32           # the face region is compared at PATCH x PATCH pixels


def frame_boxes(anchor_frames, anchor_boxes, num_frames: int) -> np.ndarray:
    """(num_frames, 4) x, y, w, h of the face at every frame: linear between the anchors where it is known,
    held before the first and after the last; NaN everywhere when it is known nowhere."""
    known = [(int(f), np.asarray(b, np.float64)[:4]) for f, b in zip(anchor_frames, anchor_boxes) if b is not None]
    out = np.full((num_frames, 4), np.nan)
    if not known:
        return out
    frames = np.array([f for f, _ in known], np.float64)
    boxes = np.stack([b for _, b in known])
    at = np.arange(num_frames, dtype=np.float64)
    for c in range(4):
        out[:, c] = np.interp(at, frames, boxes[:, c])
    return out


def _patch(img: np.ndarray, box) -> np.ndarray:
    x, y, w, h = box
    x0, y0 = int(round(max(x, 0))), int(round(max(y, 0)))
    x1, y1 = int(round(min(x + w, img.shape[1]))), int(round(min(y + h, img.shape[0])))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros((PATCH, PATCH), np.float32)
    return cv2.resize(img[y0:y1, x0:x1], (PATCH, PATCH), interpolation=cv2.INTER_AREA).astype(np.float32)


def face_motion(pictures: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) motion[j]: mean |change| of the face from frame j-1 to frame j (0 for the first frame and where
    the face is unknown). Both frames are cut with frame j's box, so the interpolated box's own drift
    does not count as motion."""
    motion = np.zeros(len(pictures), np.float32)
    for j in range(1, len(pictures)):
        if np.isfinite(boxes[j]).all():
            motion[j] = np.abs(_patch(pictures[j], boxes[j]) - _patch(pictures[j - 1], boxes[j])).mean()
    return motion


def apex_starts(motion, anchor_frames, num_frames: int, length: int) -> np.ndarray:
    """Per anchor, the first frame of the ``length``-frame window with the most motion inside its interval
    (from the anchor to the next one; the last to the clip's last frame). A window holds the changes
    between its consecutive frames, so it may end on the next anchor; an interval shorter than the
    window keeps the anchor (the anchor's tubelet covers it already). Ties go to the earliest window."""
    motion = np.asarray(motion, np.float64)
    anchors = [int(a) for a in anchor_frames]
    ends = anchors[1:] + [num_frames - 1]
    starts = []
    for first, end in zip(anchors, ends):
        best, best_score = first, -1.0
        for s in range(first, max(first, end - length + 1) + 1):
            score = float(motion[s + 1:s + length].sum())
            if score > best_score + 1e-9:
                best, best_score = s, score
        starts.append(best)
    return np.asarray(starts, np.int64)


def spot_tubelets(clip, detector, *, max_gap: int = 2) -> np.ndarray:
    """The first frame of each of ``clip``'s tubelets at its interval's peak of facial motion (see the
    module docstring); ``clip`` comes from ``decode_clip(..., motion_side=...)`` with its tubelets at
    the anchors."""
    if clip.thumbnails is None:
        raise ValueError("spot_tubelets needs the clip's grey pictures: decode_clip(..., motion_side=MOTION_SIDE)")
    _, _, track = detect_speaker(clip, detector, max_gap=max_gap)
    to_thumb = clip.thumbnails.shape[2] / clip.info.width
    boxes = frame_boxes(clip.frame_indices, [None if b is None else np.asarray(b) * to_thumb for b in track],
                        len(clip.thumbnails))
    motion = face_motion(clip.thumbnails, boxes)
    return apex_starts(motion, clip.frame_indices, len(clip.thumbnails), clip.tubelets.shape[1])
