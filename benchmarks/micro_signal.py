"""Do the prepared records carry the demo's micro-expressions? Spotting coverage and a nearest-centroid probe.

    .venv/bin/python benchmarks/micro_signal.py --data PREPARED --corpus RAW/corpus.json [--out runs/micro_signal.json]

For every micro-expression clip of a demo corpus (``corpus.json``: ``micro`` is not null) it reads the
prepared record (both splits, one record per video) and reports:

* coverage: the share of clips where some face crop was shown inside the micro-expression's interval
  (``face_times`` against ``micro.start``/``end``: what apex spotting is for);
* a leave-one-out nearest-centroid classifier of the hidden emotion (chance: one of four) on the tubelet
  that covers the micro-expression, from (a) the difference between its most-moved crop and its first crop
  (8x8 mean-pooled grey pixels) and (b) the same crops' 68-landmark displacement.

Why: it separates "the model does not learn the micro-expressions" from "the records do not hold them". A
plain nearest-centroid rule on one crop difference is a floor on what a trained branch could read.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import cv2
import numpy as np

from microemo_jax.data import pipeline
from microemo_jax.data.records.record import text_field


def _crop(record: dict, index: int) -> np.ndarray:
    """Crop ``index`` (row-major over anchors x crops) of a record, grey float32."""
    data, offsets = np.asarray(record['faces_jpeg']), np.asarray(record['face_offsets'])
    return cv2.imdecode(data[offsets[index]:offsets[index + 1]], cv2.IMREAD_GRAYSCALE).astype(np.float32)


def micro_features(record: dict, micro: dict) -> dict | None:
    """The covering tubelet's crop difference and landmark displacement, or None when no crop covers it."""
    times, mask = np.asarray(record['face_times']), np.asarray(record['face_mask'], bool)
    inside = (times >= micro['start'] - 0.02) & (times <= micro['end'] + 0.02) & mask
    if not inside.any():
        return None
    t = int(inside.any(axis=1).argmax())
    landmarks = np.asarray(record['face_landmarks'], np.float32)
    k = int(np.abs(landmarks[t] - landmarks[t, :1]).sum(axis=(1, 2)).argmax())
    before = int(mask[:t].sum())                          # crops are packed row-major, masked ones absent
    diff = _crop(record, before + k) - _crop(record, before)
    h, w = diff.shape
    pooled = diff[:h - h % 8, :w - w % 8].reshape(8, h // 8, 8, w // 8).mean(axis=(1, 3)).ravel()
    return {'crop_difference': pooled, 'landmark_displacement': (landmarks[t, k] - landmarks[t, 0]).ravel()}


def nearest_centroid_loo(x: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out accuracy of the nearest class mean (features standardised)."""
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    right = 0
    for i in range(len(y)):
        rest = np.arange(len(y)) != i
        centroids = {c: x[rest & (y == c)].mean(0) for c in set(y[rest])}
        right += min(centroids, key=lambda c: float(((x[i] - centroids[c]) ** 2).sum())) == y[i]
    return right / len(y)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', required=True, help='the prepared demo corpus')
    ap.add_argument('--corpus', required=True, help="the raw corpus's corpus.json")
    ap.add_argument('--out', help='also write the figures to this JSON file')
    args = ap.parse_args(argv)
    with open(args.corpus, encoding='utf-8') as f:
        clips = {c['name']: c for c in json.load(f)['clips']}
    feats, labels, missed, seen = {}, [], [], set()
    for split in ('train', 'validation'):
        source = pipeline.open_split(args.data, split)
        for i in range(len(source)):
            record = source[i]
            video = text_field(record['name']).split('#')[0]
            clip = clips.get(video)
            if clip is None or clip['micro'] is None or video in seen:
                continue
            seen.add(video)
            found = micro_features(record, clip['micro'])
            if found is None:
                missed.append(video)
                continue
            for key, value in found.items():
                feats.setdefault(key, []).append(value)
            labels.append(clip['micro']['emotion'])
    if len(labels) < 8:
        sys.exit(f'error: only {len(labels)} micro-expression clips with a covering crop; need >= 8')
    y = np.array(labels)
    result = {'micro_clips': len(seen), 'covered': len(labels), 'missed': missed, 'classes': sorted(set(labels)),
              'chance': 1 / len(set(labels)),
              'nearest_centroid_loo': {k: nearest_centroid_loo(np.stack(v), y) for k, v in feats.items()}}
    print(f"micro-expression clips: {result['micro_clips']}, a crop inside the micro-expression: {result['covered']}")
    for key, acc in result['nearest_centroid_loo'].items():
        print(f"nearest-centroid, leave-one-out, {key}: {acc:.3f} (chance {result['chance']:.3f})")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
