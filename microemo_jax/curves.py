"""Loss curves of one or more runs: a text summary and a PNG (``plots.draw_curves``, matplotlib).

    python -m microemo_jax.curves RUN_DIR [RUN_DIR ...] [--out curves.png]

Reads RUN_DIR/metrics.jsonl (written by train) and draws train loss (lines) and validation loss
(dots) against the step, runs placed one after another (stage 1 then stage 2).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from microemo_jax.plots import draw_curves


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
    draw_curves(runs, out)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
