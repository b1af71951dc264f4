"""Loss curves of one or more runs: a text summary and a PNG (``plots.draw_curves``, matplotlib).

    python -m microemo_jax.curves RUN_DIR [RUN_DIR ...] [--out curves.png] [--rl-out reward_curves.png]

Reads RUN_DIR/metrics.jsonl (written by train) and draws train loss (lines) and validation loss
(dots) against the step, runs placed one after another (stage 1 then stage 2). Stage-3 runs (they log
rewards) get their own summary and picture instead (``plots.draw_rl_curves``): reward mean and spread, each
reward component, the held-out greedy reward, KL, clipped fraction, answer length and entropy.
"""
from __future__ import annotations

import argparse
import os
import sys

from microemo_jax.plots import draw_curves, draw_rl_curves
from microemo_jax.training.run_log import is_rl, read_series, rl_summary, summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog='python -m microemo_jax.curves', description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='+', help='training run directories, in order')
    parser.add_argument('--out', help='PNG to write (default: FIRST_RUN/../loss_curves.png)')
    parser.add_argument('--rl-out', help='PNG of the stage-3 runs (default: FIRST_STAGE3_RUN/../reward_curves.png)')
    args = parser.parse_args(argv)
    try:
        series = {r: read_series(r) for r in args.runs}
    except FileNotFoundError as e:
        sys.exit(f'error: {e}')
    supervised = {r: (s.get('loss', []), s.get('val_loss', [])) for r, s in series.items() if not is_rl(s)}
    rl = {r: s for r, s in series.items() if is_rl(s)}
    if supervised:
        print(summary(supervised))
        out = args.out or os.path.join(os.path.dirname(os.path.abspath(next(iter(supervised)))), 'loss_curves.png')
        draw_curves(supervised, out)
        print(f'wrote {out}')
    if rl:
        print(rl_summary(rl))
        out = args.rl_out or os.path.join(os.path.dirname(os.path.abspath(next(iter(rl)))), 'reward_curves.png')
        draw_rl_curves(rl, out)
        print(f'wrote {out}')


if __name__ == '__main__':
    main()
