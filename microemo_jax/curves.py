"""Loss curves of one or more runs: a text summary and a PNG (cv2-drawn, no plotting library needed).

    python -m microemo_jax.curves RUN_DIR [RUN_DIR ...] [--out curves.png]

Reads RUN_DIR/metrics.jsonl (written by train) and draws train loss (lines) and validation loss
(dots) against the step, runs placed one after another (stage 1 then stage 2).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

COLOURS = [(200, 80, 30), (40, 140, 40), (30, 30, 200), (150, 50, 150)]  # BGR


def read_run(workdir: str) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(train (step, loss) pairs, validation (step, val_loss) pairs)."""
    path = os.path.join(workdir, 'metrics.jsonl')
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {workdir} a training run directory?")
    train, val = {}, {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get('loss') is not None:
                train[int(rec['step'])] = float(rec['loss'])  # a resumed run may log a step twice: keep the last
            if rec.get('val_loss') is not None:
                val[int(rec['step'])] = float(rec['val_loss'])
    return sorted(train.items()), sorted(val.items())


def summary(runs: dict[str, tuple[list, list]]) -> str:
    lines = [f"{'run':40s} {'steps':>6s} {'first loss':>11s} {'last loss':>10s} {'first val':>10s} {'last val':>9s}"]
    for name, (train, val) in runs.items():
        fmt = lambda xs, i: f'{xs[i][1]:.4f}' if xs else '-'  # noqa: E731
        lines.append(f"{name[-40:]:40s} {train[-1][0] if train else 0:6d} {fmt(train, 0):>11s} {fmt(train, -1):>10s} "
                     f"{fmt(val, 0):>10s} {fmt(val, -1):>9s}")
    return '\n'.join(lines)


def draw(runs: dict[str, tuple[list, list]], out: str, size=(900, 500)) -> None:
    import cv2
    w, h = size
    left, right, top, bottom = 70, 20, 30, 50
    img = np.full((h, w, 3), 255, np.uint8)
    offset, segments = 0, []
    for name, (train, val) in runs.items():
        segments.append((name, [(s + offset, l) for s, l in train], [(s + offset, l) for s, l in val]))
        offset += train[-1][0] if train else 0
    points = [p for _, t, v in segments for p in t + v]
    if not points:
        raise ValueError('no losses to draw')
    xs, ys = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    x0, x1 = 0.0, max(xs.max(), 1.0)
    y0, y1 = ys.min(), ys.max() if ys.max() > ys.min() else ys.min() + 1.0
    px = lambda x: int(left + (x - x0) / (x1 - x0) * (w - left - right))  # noqa: E731
    py = lambda y: int(h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom))  # noqa: E731
    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    for frac in np.linspace(0, 1, 5):
        y = y0 + frac * (y1 - y0)
        cv2.putText(img, f'{y:.2f}', (5, py(y) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        x = x0 + frac * (x1 - x0)
        cv2.putText(img, f'{int(x)}', (px(x) - 10, h - bottom + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.putText(img, 'step', (w // 2, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    for i, (name, train, val) in enumerate(segments):
        colour = COLOURS[i % len(COLOURS)]
        pts = np.array([(px(s), py(l)) for s, l in train], np.int32)
        if len(pts) > 1:
            cv2.polylines(img, [pts], False, colour, 2)
        for s, l in val:
            cv2.circle(img, (px(s), py(l)), 5, colour, -1)
        label = f'{os.path.basename(os.path.normpath(name))}: train (line), validation (dots)'
        cv2.putText(img, label, (left + 10, top + 18 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
    if not cv2.imwrite(out, img):
        raise OSError(f'could not write {out}')


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog='python -m microemo_jax.curves', description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='+', help='training run directories, in order')
    parser.add_argument('--out', help='PNG to write (default: FIRST_RUN/../loss_curves.png)')
    args = parser.parse_args(argv)
    try:
        runs = {r: read_run(r) for r in args.runs}
    except FileNotFoundError as e:
        sys.exit(f'error: {e}')
    print(summary(runs))
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.runs[0])), 'loss_curves.png')
    draw(runs, out)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
