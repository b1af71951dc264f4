"""Loss curves of one or more runs: a text summary and a PNG (``plots.draw_curves``, matplotlib).

    python -m microemo_jax.curves RUN_DIR [RUN_DIR ...] [--out curves.png]

Reads RUN_DIR/metrics.jsonl (written by train) and draws train loss (lines) and validation loss
(dots) against the step, runs placed one after another (stage 1 then stage 2).
"""
from __future__ import annotations

import os

from microemo_jax import cli_checks
from microemo_jax.plots import draw_curves
from microemo_jax.training.run_log import read_run, summary


def main(argv=None) -> None:
    parser = cli_checks.Parser(prog='python -m microemo_jax.curves', description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='+', type=cli_checks.existing_dir, help='training run directories, in order')
    parser.add_argument('--out', type=cli_checks.out_file, help='PNG to write (default: FIRST_RUN/../loss_curves.png)')
    args = parser.parse_args(argv)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.runs[0])), 'loss_curves.png')
    runs = {}
    for run in args.runs:
        try:
            runs[run] = read_run(run)
        except FileNotFoundError as e:
            cli_checks.fail(e)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:   # a damaged metrics.jsonl
            cli_checks.fail(f"{os.path.join(run, 'metrics.jsonl')} cannot be read ({type(e).__name__}: {e})")
    print(summary(runs))
    try:
        draw_curves(runs, out)
    except OSError as e:
        cli_checks.fail(f"--out {out}: {e.strerror or e}")
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
