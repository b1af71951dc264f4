"""Loss curves of one or more runs: a text summary and a PNG (``plots.draw_curves``, matplotlib).

    python -m microemo_jax.curves RUN_DIR [RUN_DIR ...] [--out curves.png] [--rl-out reward_curves.png]

Reads RUN_DIR/metrics.jsonl (written by train) and draws train loss (lines) and validation loss
(dots) against the step, runs placed one after another (stage 1 then stage 2). Stage-3 runs (they log
rewards) get their own summary and picture instead (``plots.draw_rl_curves``): reward mean and spread, each
reward component, the held-out greedy reward, KL, clipped fraction, answer length and entropy.
"""
from __future__ import annotations

import os

from microemo_jax import cli_checks
from microemo_jax.plots import draw_curves, draw_rl_curves
from microemo_jax.training.run_log import is_rl, read_series, rl_summary, summary


def _draw(draw, runs, out: str) -> None:
    try:
        draw(runs, out)
    except OSError as e:
        cli_checks.fail(f"--out {out}: {e.strerror or e}")
    print(f'wrote {out}')


def main(argv=None) -> None:
    parser = cli_checks.Parser(prog='python -m microemo_jax.curves', description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='+', type=cli_checks.existing_dir, help='training run directories, in order')
    parser.add_argument('--out', type=cli_checks.out_file, help='PNG to write (default: FIRST_RUN/../loss_curves.png)')
    parser.add_argument('--rl-out', type=cli_checks.out_file,
                        help='PNG of the stage-3 runs (default: FIRST_STAGE3_RUN/../reward_curves.png)')
    args = parser.parse_args(argv)
    series = {}
    for run in args.runs:
        try:
            series[run] = read_series(run)
        except FileNotFoundError as e:
            cli_checks.fail(e)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:   # a damaged metrics.jsonl
            cli_checks.fail(f"{os.path.join(run, 'metrics.jsonl')} cannot be read ({type(e).__name__}: {e})")
    supervised = {r: (s.get('loss', []), s.get('val_loss', [])) for r, s in series.items() if not is_rl(s)}
    rl = {r: s for r, s in series.items() if is_rl(s)}
    if supervised:
        print(summary(supervised))
        _draw(draw_curves, supervised,
              args.out or os.path.join(os.path.dirname(os.path.abspath(next(iter(supervised)))), 'loss_curves.png'))
    if rl:
        print(rl_summary(rl))
        _draw(draw_rl_curves, rl,
              args.rl_out or os.path.join(os.path.dirname(os.path.abspath(next(iter(rl)))), 'reward_curves.png'))


if __name__ == '__main__':
    main()
