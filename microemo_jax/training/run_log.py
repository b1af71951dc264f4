"""A training run's ``metrics.jsonl`` read back: the train and validation loss curves, stage 3's reward curves, and
their summary lines (what ``curves`` prints and draws, and the ablation notebook tabulates)."""
from __future__ import annotations

import json
import math
import os

# Stage 3's curves (training/grpo_step.py, runs/grpo.py): reward_mean is what marks a run as stage 3.
RL_KEYS = ('reward_mean', 'reward_std', 'kl', 'clip_fraction', 'response_length', 'entropy', 'val_reward_mean')


def _path(workdir: str) -> str:
    path = os.path.join(workdir, 'metrics.jsonl')
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {workdir} a training run directory?")
    return path


def read_series(workdir: str) -> dict[str, list[tuple[int, float]]]:
    """Every numeric key of metrics.jsonl as sorted (step, value) pairs; a resumed run's repeated step keeps its
    last value; null (non-finite) values are left out."""
    series: dict[str, dict[int, float]] = {}
    with open(_path(workdir)) as f:
        for line in f:
            rec = json.loads(line)
            step = int(rec['step'])
            for key, value in rec.items():
                if key != 'step' and isinstance(value, (int, float)) and not isinstance(value, bool) \
                        and math.isfinite(value):
                    series.setdefault(key, {})[step] = float(value)
    return {k: sorted(v.items()) for k, v in series.items()}


def read_run(workdir: str) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(train (step, loss) pairs, validation (step, val_loss) pairs)."""
    series = read_series(workdir)
    return series.get('loss', []), series.get('val_loss', [])


def is_rl(series: dict) -> bool:
    """Whether a run's series are stage 3's (it logs rewards)."""
    return bool(series.get('reward_mean'))


def summary(runs: dict[str, tuple[list, list]]) -> str:
    lines = [f"{'run':40s} {'steps':>6s} {'first loss':>11s} {'last loss':>10s} {'first val':>10s} {'last val':>9s}"]
    for name, (train, val) in runs.items():
        fmt = lambda xs, i: f'{xs[i][1]:.4f}' if xs else '-'  # noqa: E731
        lines.append(f"{name[-40:]:40s} {train[-1][0] if train else 0:6d} {fmt(train, 0):>11s} {fmt(train, -1):>10s} "
                     f"{fmt(val, 0):>10s} {fmt(val, -1):>9s}")
    return '\n'.join(lines)


def rl_summary(runs: dict[str, dict]) -> str:
    """Stage-3 runs: first and last reward_mean and kl, and the held-out greedy reward first and last."""
    lines = [f"{'run':40s} {'steps':>6s} {'reward first':>13s} {'reward last':>12s} {'kl last':>8s} "
             f"{'held-out first':>15s} {'held-out last':>14s}"]
    for name, s in runs.items():
        fmt = lambda key, i: f"{s[key][i][1]:.4f}" if s.get(key) else '-'  # noqa: E731
        steps = s['reward_mean'][-1][0] if s.get('reward_mean') else 0
        lines.append(f"{name[-40:]:40s} {steps:6d} {fmt('reward_mean', 0):>13s} {fmt('reward_mean', -1):>12s} "
                     f"{fmt('kl', -1):>8s} {fmt('val_reward_mean', 0):>15s} {fmt('val_reward_mean', -1):>14s}")
    return '\n'.join(lines)
