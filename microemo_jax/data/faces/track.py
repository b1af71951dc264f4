"""The speaker's face across a clip's anchors: detections linked into tracks, the biggest, steadiest track
chosen, short gaps inside it interpolated (``track_speaker``); ``detect_speaker`` runs a detector on a
decoded clip's tubelets and tracks the result.
"""
from __future__ import annotations

import numpy as np


def iou(a, b) -> float:
    """Intersection over union of two x, y, w, h boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def _affinity(a: np.ndarray, b: np.ndarray) -> float:
    """IoU, or for boxes that moved further than they overlap (anchors can be a second apart: heads move),
    closeness of centres relative to the face size, for faces of similar size: 1 at the same centre, 0.5 one
    face size apart, 0 at two face sizes (two people side by side stay apart)."""
    overlap = iou(a, b)
    size_a, size_b = np.sqrt(a[2] * a[3]), np.sqrt(b[2] * b[3])
    if min(size_a, size_b) <= 0 or max(size_a, size_b) / min(size_a, size_b) > 1.5:
        return overlap
    dist = np.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2)
    return max(overlap, max(0.0, 1.0 - dist / (size_a + size_b)))


def track_speaker(detections_per_anchor, *, times=None, max_gap: int = 2,
                  min_affinity: float = 0.25) -> list[np.ndarray | None]:
    """The speaker's face box (x, y, w, h float32) at each anchor, or None where no face is known.

    Detections are linked into tracks greedily, anchor by anchor (best affinity first, against each track's
    last box, however long ago: a face that comes back where it was is the same face). The speaker is the
    track with the largest sum over its detections of the face side (sqrt of the area): the face that is
    both big and present most often. Gaps of at most ``max_gap`` anchors *inside* that track are filled by
    linear interpolation between its neighbours (by ``times`` if given, else by anchor index); before its
    first and after its last detection the face is unknown.

    Args:
      detections_per_anchor: one array per anchor, (N, 4) or (N, 5) x, y, w, h[, score] (N may be 0).
    """
    tracks: list[dict[int, np.ndarray]] = []
    last_seen: list[int] = []
    for i, dets in enumerate(detections_per_anchor):
        dets = np.asarray(dets, np.float32)
        boxes = dets.reshape(-1, dets.shape[-1])[:, :4] if dets.size else np.zeros((0, 4), np.float32)
        pairs = []
        for t, track in enumerate(tracks):
            ref = track[last_seen[t]]
            for d, box in enumerate(boxes):
                aff = _affinity(ref, box)
                if aff >= min_affinity:
                    pairs.append((aff, t, d))
        used_t, used_d = set(), set()
        for _aff, t, d in sorted(pairs, key=lambda p: -p[0]):
            if t in used_t or d in used_d:
                continue
            tracks[t][i] = boxes[d]
            last_seen[t] = i
            used_t.add(t)
            used_d.add(d)
        for d, box in enumerate(boxes):
            if d not in used_d:
                tracks.append({i: box})
                last_seen.append(i)

    n = len(detections_per_anchor)
    result: list[np.ndarray | None] = [None] * n
    if not tracks:
        return result
    best = max(tracks, key=lambda tr: (sum(float(np.sqrt(b[2] * b[3])) for b in tr.values()), len(tr)))
    axis = np.asarray(times, np.float64) if times is not None else np.arange(n, dtype=np.float64)
    known = sorted(best)
    for a in known:
        result[a] = np.asarray(best[a], np.float32)
    for left, right in zip(known[:-1], known[1:]):
        if 1 < right - left <= max_gap + 1:
            span = axis[right] - axis[left]
            for k in range(left + 1, right):
                w = (axis[k] - axis[left]) / span if span > 0 else (k - left) / (right - left)
                result[k] = ((1 - w) * best[left] + w * best[right]).astype(np.float32)
    return result


def matching_detection(dets, track) -> np.ndarray:
    """Per anchor, the index of the detection the tracked box is (-1: interpolated or no face)."""
    out = np.full(len(track), -1, np.int64)
    for i, box in enumerate(track):
        if box is not None and len(dets[i]):
            hit = np.nonzero(np.all(np.abs(dets[i][:, :4] - box) < 1e-3, axis=1))[0]
            if len(hit):
                out[i] = int(hit[0])
    return out


def detect_speaker(clip, detector, *, max_gap: int = 2):
    """Faces on the first frame of each tubelet of ``clip`` (a video.DecodedClip) and the speaker's track
    across them: (detections per tubelet (N, 5) in source-frame pixels, keypoints per tubelet (N, 6, 2) in
    tubelet pixels or None, the track: one source-frame box or None per tubelet)."""
    tub, tmask = clip.tubelets, clip.tubelet_mask
    with_kps = hasattr(detector, 'detect_with_keypoints')
    dets, kps = [], []
    for i in range(tub.shape[0]):
        if not tmask[i, 0]:
            d, kp = np.zeros((0, 5), np.float32), np.zeros((0, 6, 2), np.float32)
        elif with_kps:
            d, kp = detector.detect_with_keypoints(tub[i, 0])
        else:
            d, kp = detector.detect(tub[i, 0]), None
        d = d.copy()
        d[:, :4] *= clip.tubelet_scale
        dets.append(d)
        kps.append(kp)
    return dets, kps, track_speaker(dets, times=clip.tubelet_times[:, 0], max_gap=max_gap)
