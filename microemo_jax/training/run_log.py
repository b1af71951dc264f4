"""A training run's ``metrics.jsonl`` read back: the train and validation loss curves, and their summary line
(what ``curves`` prints and draws, and the ablation notebook tabulates)."""
from __future__ import annotations

import json
import os


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
