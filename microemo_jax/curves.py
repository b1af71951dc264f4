"""Loss curves of one or more runs: a text summary and a PNG (``plots.draw_curves``, matplotlib).

    python -m microemo_jax.curves RUN_DIR [RUN_DIR ...] [--out curves.png]

Reads RUN_DIR/metrics.jsonl (written by train) and draws train loss (lines) and validation loss
(dots) against the step, runs placed one after another (stage 1 then stage 2).
"""
from __future__ import annotations

import argparse
import os
import sys

from microemo_jax.plots import draw_curves
from microemo_jax.training.run_log import read_run, summary


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
