"""The demo ablations without Jupyter: train and score one demo corpus under each variant of the model.

    python tools/ablations.py [--out runs/ablations] [--seed 0] [--clips 160] [--val-fraction 0.1] [--steps N]
                              [--variants full,no_micro,...] [--max-new-tokens 256] [--override KEY=VALUE ...]

(``make ablations`` runs it.) Variants: full, no_micro (model.micro_expression.enabled=false), no_global_local,
no_timestamps (model.frame_encoder.timestamp_text=false), no_audio, shuffled_faces (the full model scored with
faces shuffled between clips). Each trains stage 1 then stage 2 as ``make demo`` does and is scored with
``evaluate --groups`` on the held-out split; a finished variant is not run again. Writes OUT/ablations.md,
.json and .png: per scenario group and for the micro-expression clips, the score with its 95% interval, and
the error of the times the explanations state. The library is ``microemo_jax.runs.ablations``
(docs/ablations.md).
"""
from __future__ import annotations

import argparse
import sys

from microemo_jax.config import ConfigError
from microemo_jax.params import ParamsFolderError
from microemo_jax.runs.ablation_table import markdown, table, write_table
from microemo_jax.runs.ablations import VARIANTS, AblationError, AblationSettings, run_ablations


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog='python tools/ablations.py', description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='runs/ablations', help='one folder per variant, and the table')
    ap.add_argument('--seed', type=int, help='data.demo_seed: which demo corpus')
    ap.add_argument('--clips', type=int, help='data.demo_clips: its size')
    ap.add_argument('--val-fraction', dest='val_fraction', type=float, help='data.validation_fraction')
    ap.add_argument('--steps', type=int, help='total_steps of each stage (default: the config\'s)')
    ap.add_argument('--variants', default=','.join(VARIANTS), help=f'comma-separated, from {",".join(VARIANTS)}')
    ap.add_argument('--max-new-tokens', dest='max_new_tokens', type=int, default=256)
    ap.add_argument('--batch-size', dest='batch_size', type=int, default=8, help='evaluate --batch-size')
    ap.add_argument('--metric', default='avg', choices=('accuracy_s', 'recall_s', 'avg'), help='score in the table')
    ap.add_argument('--override', action='append', default=[], metavar='KEY=VALUE',
                    help='a config override for every run (repeatable)')
    ap.add_argument('--config', default='configs/emer.py:demo')
    args = ap.parse_args(argv)
    settings = AblationSettings(out=args.out, seed=args.seed, clips=args.clips, val_fraction=args.val_fraction,
                                steps=args.steps, variants=tuple(v.strip() for v in args.variants.split(',') if v),
                                extra=tuple(args.override), config=args.config, max_new_tokens=args.max_new_tokens,
                                batch_size=args.batch_size)
    try:
        results = run_ablations(settings)
    except (AblationError, ConfigError, ParamsFolderError, FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    paths = write_table(results, args.out, args.metric)
    print('\n' + markdown(table(results, args.metric)))
    print(f"\nwrote {paths['md']}, {paths['json']} and {paths['png']}")


if __name__ == '__main__':
    main()
