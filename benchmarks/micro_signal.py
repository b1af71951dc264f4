"""Do the prepared records carry the demo's micro-expressions? Spotting coverage and a nearest-centroid probe.

    .venv/bin/python benchmarks/micro_signal.py --data PREPARED --corpus RAW/corpus.json [--face-encoder FOLDER]
        [--out runs/micro_signal.json]

For every micro-expression clip of a demo corpus (``corpus.json``: ``micro`` is not null) it reads the
prepared record (both splits, one record per video) and reports:

* coverage: the share of clips where some face crop was shown inside the micro-expression's interval
  (``face_times`` against ``micro.start``/``end``: what apex spotting is for);
* a leave-one-out nearest-centroid classifier of the hidden emotion (chance: one of four) on the crop shown
  nearest the middle of the micro-expression, against the mean of the clip's crops shown outside it: (a) 8x8
  mean-pooled grey pixels, (b) the 68 landmarks; with ``--face-encoder FOLDER`` (``python -m
  microemo_jax.runs.face_encoder``, or the demo's under ``~/.cache/microemo-jax/demo``) also (c) the features
  of that pretrained face ViT (its class token).

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


def _crop(record: dict, index: int, mode=cv2.IMREAD_GRAYSCALE) -> np.ndarray:
    """Crop ``index`` (row-major over anchors x crops) of a record: grey float32, or with ``mode``
    cv2.IMREAD_COLOR uint8 RGB (3, H, W)."""
    data, offsets = np.asarray(record['faces_jpeg']), np.asarray(record['face_offsets'])
    img = cv2.imdecode(data[offsets[index]:offsets[index + 1]], mode)
    if mode == cv2.IMREAD_GRAYSCALE:
        return img.astype(np.float32)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)


def face_encoder_features(folder: str):
    """crops uint8 (N, 3, H, W) -> (N, D) class-token features of a pretrained demo face encoder."""
    import jax.numpy as jnp  # noqa: PLC0415 (only with --face-encoder)
    import ml_collections  # noqa: PLC0415
    from flax import nnx  # noqa: PLC0415

    from microemo_jax.demo.face_encoder import FaceEncoder  # noqa: PLC0415
    from microemo_jax.params import restore_params  # noqa: PLC0415
    from microemo_jax.pixels import normalise  # noqa: PLC0415
    with open(os.path.join(folder, 'model_config.json'), encoding='utf-8') as f:
        model_cfg = ml_collections.ConfigDict(json.load(f))
    encoder = restore_params(folder, FaceEncoder(model_cfg, rngs=nnx.Rngs(0)))
    return lambda crops: np.asarray(encoder.face_vit(normalise(jnp.asarray(crops), xp=jnp))[:, 0])


def micro_features(record: dict, micro: dict, encode=None) -> dict | None:
    """The crop shown nearest the middle of the micro-expression against the mean of the clip's crops shown
    outside it: grey pixels, landmarks and (``encode``) face-encoder features; None when no crop is inside."""
    times, mask = np.asarray(record['face_times']), np.asarray(record['face_mask'], bool)
    times = times[mask]                                   # crops are packed row-major, masked ones absent
    inside = (times >= micro['start'] - 0.02) & (times <= micro['end'] + 0.02)
    if not inside.any() or inside.all():
        return None
    j = int(np.argmin(np.abs(times - (micro['start'] + micro['end']) / 2)))
    outside = np.flatnonzero(~inside)
    grey = np.stack([_crop(record, i) for i in range(len(times))])
    diff = grey[j] - grey[outside].mean(0)
    h, w = diff.shape
    pooled = diff[:h - h % 8, :w - w % 8].reshape(8, h // 8, 8, w // 8).mean(axis=(1, 3)).ravel()
    landmarks = np.asarray(record['face_landmarks'], np.float32)[mask]
    out = {'crop_difference': pooled, 'landmark_displacement': (landmarks[j] - landmarks[outside].mean(0)).ravel()}
    if encode is not None:
        feats = encode(np.stack([_crop(record, i, cv2.IMREAD_COLOR) for i in range(len(times))]))
        out['face_encoder_difference'] = feats[j] - feats[outside].mean(0)
    return out


def nearest_centroid_loo(x: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out accuracy of the nearest class mean (features standardised)."""
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    right = 0
    for i in range(len(y)):
        rest = np.arange(len(y)) != i
        centroids = {c: x[rest & (y == c)].mean(0) for c in set(y[rest])}
        right += min(centroids, key=lambda c: float(((x[i] - centroids[c]) ** 2).sum())) == y[i]
    return right / len(y)


def write_json(path: str, result: dict) -> None:
    """The figures as JSON at ``path`` (its folder made if needed)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(result, f, indent=2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', required=True, help='the prepared demo corpus')
    ap.add_argument('--corpus', required=True, help="the raw corpus's corpus.json")
    ap.add_argument('--face-encoder', help='a pretrained demo face encoder folder: also probe its features')
    ap.add_argument('--out', help='also write the figures to this JSON file')
    args = ap.parse_args(argv)
    encode = face_encoder_features(args.face_encoder) if args.face_encoder else None
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
            found = micro_features(record, clip['micro'], encode)
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
        write_json(args.out, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
