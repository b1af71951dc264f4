"""Stage 2 against stage 3 on the same held-out clips (``make demo-rl`` runs it after training stage 3).

    python tools/demo_rl.py --stage2 runs/demo/stage2/params --stage3 runs/demo/stage3/params --out runs/demo/rl_eval

Evaluates both parameter folders with ``evaluate``'s code on the held-out split of the data stage 3 trained on
(its ``params/training.json``), then writes OUT/comparison.md (the table, the paired difference with its 95%
interval, the per-group table with intervals, before/after explanations), comparison.json and comparison.png;
``microemo_jax/runs/compare_stages.py`` is the library.
"""
from __future__ import annotations

import argparse
import os
import sys

from microemo_jax.params import training_info
from microemo_jax.runs.ablations import AblationError, groups_for
from microemo_jax.runs.compare_stages import compare, markdown


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--stage2', required=True, help='the stage-2 parameter folder stage 3 started from')
    parser.add_argument('--stage3', required=True, help="stage 3's parameter folder (WORKDIR/params)")
    parser.add_argument('--out', required=True)
    parser.add_argument('--data', help="prepared dataset (default: the one stage 3 trained on)")
    parser.add_argument('--split', default='validation')
    parser.add_argument('--question', default='description', choices=('description', 'ov'))
    parser.add_argument('--batch-size', dest='batch_size', type=int, default=8)
    parser.add_argument('--groups', help="evaluate's --groups CSV (default: the demo corpus's groups.csv, if the "
                                         "data came from a demo corpus)")
    args = parser.parse_args(argv)
    data = args.data or training_info(args.stage3).get('data_dir')
    if not data:
        sys.exit(f"error: {args.stage3}/training.json names no data folder; pass --data")
    os.makedirs(args.out, exist_ok=True)
    groups = args.groups
    if groups is None:
        try:
            groups = groups_for(data, args.out)
        except AblationError as e:
            print(f"no scenario groups: {e}")
    print(markdown(compare(args.stage2, args.stage3, data, args.out, split=args.split, question=args.question,
                           batch_size=args.batch_size, groups=groups)))
    print(f"wrote {os.path.join(args.out, 'comparison.md')} and comparison.json")


if __name__ == '__main__':
    main()
