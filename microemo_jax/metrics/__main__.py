"""Score predicted OV labels against gold ones and print one JSON object.

    python -m microemo_jax.metrics --gold GOLD.csv --pred PRED.csv [--synonyms F] [--wheel F]
    python -m microemo_jax.metrics --dataset D --gold GOLD --pred PRED [--wheel DIR_OR_NPZ] [--sentiment F]

Without ``--dataset``: MER2024-OV (and, with ``--wheel``, MER2025's emotion-wheel) scores; both CSVs have
columns ``name, openset`` (MER's format), bad rows are listed in ``malformed_rows`` (and on stderr) with
their line numbers. With ``--dataset``: one MER-UniBench score (``bench_cli``); gold ``name,emo`` |
``name,val`` | ``name,openset`` or the official label .npz, predictions ``name,openset[,sentiment]`` or
the official ``*-openset.npz``, and any unreadable row stops the run. A file that cannot be used exits
with status 2 and a one-line message, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys

from microemo_jax import cli_checks
from microemo_jax.metrics.bench_cli import run_benchmark
from microemo_jax.metrics.benchmark import DATASETS
from microemo_jax.metrics.ov import score_ov
from microemo_jax.metrics.synonyms import load_synonyms
from microemo_jax.metrics.table import read_label_csv
from microemo_jax.metrics.wheel import load_wheel, score_wheel

ABOUT = {
    'accuracy_s': 'MER2024-OV: mean over gold samples of |G∩P|/|P| after synonym grouping (0 if P is empty)',
    'recall_s': 'MER2024-OV: mean over gold samples of |G∩P|/|G| after synonym grouping (0 if P is empty)',
    'avg': '(accuracy_s + recall_s) / 2, the MER2024-OV headline',
    'n': 'gold samples scored',
    'ew_level1_f': 'emotion-wheel F (MER2025), coarse clusters, mean over the wheels',
    'ew_level2_f': 'emotion-wheel F (MER2025), finer clusters, mean over the wheels',
    'ew_mean': '(ew_level1_f + ew_level2_f) / 2, the MER2025 headline',
}


def _parser() -> argparse.ArgumentParser:
    # Files are checked by the readers (each message names the file and what is wrong; exit status 2).
    p = cli_checks.Parser(prog='python -m microemo_jax.metrics', description=__doc__.split('\n\n')[0])
    p.add_argument('--gold', required=True, help='gold CSV (name, openset); with --dataset: name,emo | name,val | '
                                                 'name,openset, or the official label .npz')
    p.add_argument('--pred', required=True, help='predicted CSV (name, openset); with --dataset: '
                                                 'name,openset[,sentiment] or the official *-openset.npz')
    p.add_argument('--synonyms', help='JSON list of groups, JSON name -> groups, or MERTools openset-synonym/ '
                                      'directory (default: the bundled table)')
    p.add_argument('--wheel', help="MER's wheel_mapping.npz or a JSON with the same keys: adds the EW scores; "
                                   "with --dataset: AffectGPT's emotion_wheel/ folder (the benchmark's table)")
    p.add_argument('--dataset', choices=sorted(DATASETS, key=list(DATASETS).index),
                   help='score one MER-UniBench dataset (hit rate, WAF or emotion-wheel F) as the official code does')
    p.add_argument('--sentiment', help='with --dataset and an *-openset.npz --pred: the official '
                                       '*-openset-sentiment.npz (default: the one beside --pred, if any)')
    return p


def run(args) -> dict:
    gold, pred = read_label_csv(args.gold), read_label_csv(args.pred)
    synonyms = load_synonyms(args.synonyms)
    wheel = load_wheel(args.wheel) if args.wheel else None
    ov = score_ov(gold.labels, pred.labels, synonyms)
    out = {k: ov[k] for k in ('accuracy_s', 'recall_s', 'avg', 'n')}
    if wheel is not None:
        ew = score_wheel(gold.labels, pred.labels, wheel)
        out.update({k: ew[k] for k in ('ew_level1_f', 'ew_level2_f', 'ew_mean')})
        out['ew_wheels'] = ew['wheels']
    out['synonyms'] = ov['synonyms']
    out['ignored_predictions'] = ov['ignored_predictions']
    out['missing_predictions'] = ov['missing_predictions']
    out['skipped_empty_gold'] = ov['skipped_empty_gold']
    out['synonyms_missing'] = ov['synonyms_missing']
    out['malformed_rows'] = gold.malformed + pred.malformed
    out['warnings'] = list(synonyms.warnings)
    out['about'] = {k: v for k, v in ABOUT.items() if k in out}
    return out


def _report(out: dict) -> None:
    for row in out['malformed_rows']:
        print(f"warning: {row['file']}:{row['line']}: {row['reason']} (row ignored)", file=sys.stderr)
    if out['ignored_predictions']:
        print(f"warning: {len(out['ignored_predictions'])} predicted names are not in gold and were ignored: "
              f"{', '.join(out['ignored_predictions'][:10])}", file=sys.stderr)
    if out['missing_predictions']:
        print(f"warning: {len(out['missing_predictions'])} gold names have no prediction and score as empty "
              f"predictions", file=sys.stderr)
    if out['synonyms_missing']:
        print(f"warning: {len(out['synonyms_missing'])} gold names have no synonym groups in {out['synonyms']}; "
              f"their labels are compared as written", file=sys.stderr)
    for w in out['warnings']:
        print(f"warning: {w}", file=sys.stderr)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.dataset:
            out = run_benchmark(args)
        elif args.sentiment:
            raise ValueError("--sentiment goes with --dataset")
        else:
            out = run(args)
    except (OSError, ValueError, TypeError, pickle.UnpicklingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dataset:
        for w in out['warnings']:
            print(f"warning: {w}", file=sys.stderr)
    else:
        _report(out)
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


if __name__ == '__main__':
    sys.exit(main())
