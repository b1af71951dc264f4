"""Score a trained model on a prepared split: generate for every clip, extract labels, compute the OV metrics.

    python -m microemo_jax.evaluate --params WORKDIR/params --data PREPARED --split validation|test --out DIR \
        [--synonyms F] [--wheel F] [--batch-size 8] [--max-new-tokens 256] [--question description|ov] [--limit N] \
        [--groups CSV] [--shuffle-faces SEED] [--bootstrap 1000]

One generation per video: a clip prepared with both a description and OV labels (records ``NAME`` and
``NAME#ov``) is asked the ``--question`` prompt once, and its gold labels are the clip's OV labels.
The answer's labels come from ``metrics.extract_labels`` (the "emotional state is a, b, c." form, else the
emotion words of the explanation). Writes ``per_sample.csv`` (name, gold, predicted, explanation, gold_times, stated_times) and
``summary.json`` (scores, ``n``, a majority-label baseline scored the same way, their 95% bootstrap intervals
over clips, the temporal grounding, per-group scores with ``--groups``, generation settings).
The baseline predicts, for every clip, the most frequent gold label of the training split (of the
evaluated split when the dataset has no training split; ``summary.json`` says which).

``--groups CSV`` (columns ``name, group``, more grouping columns allowed; the demo corpus writes one) scores
every group apart; ``--shuffle-faces SEED`` gives every clip the face tubelets of another clip of the split
(the ablation that asks whether the model reads faces). Details: docs/inference.md.

Multi-process runs (``jax.distributed``) give each process every P-th video; process 0 gathers the
parts (written under OUT/parts/, so OUT must be on a filesystem all processes share) and scores.

MER-UniBench, every prepared benchmark dataset under ROOT in one table (``inference/benchmark.py``):

    python -m microemo_jax.evaluate --bench merunibench --params DIR [--params DIR2 ... --select best] \
        --data-root ROOT --out DIR --wheel emotion_wheel/ [--extractor lexicon|cache|llm:PATH] [--cache DIR]
"""
from __future__ import annotations

import os
import sys

from microemo_jax import cli_checks
from microemo_jax.inference import bench_table, benchmark
from microemo_jax.inference.scoring import QUESTIONS, EvaluateError, evaluate
from microemo_jax.inference.settings import GenerationSettings
from microemo_jax.metrics.intervals import Bootstrap
from microemo_jax.metrics.per_sample import format_table
from microemo_jax.params import ParamsFolderError
from microemo_jax.training import distributed


def bench_main(argv: list[str]) -> None:
    """``--bench``: the benchmark's own arguments and one call."""
    parser = cli_checks.Parser(prog='python -m microemo_jax.evaluate --bench',
                               description='MER-UniBench: every prepared benchmark dataset under --data-root, '
                                                 'one table (docs/metrics_benchmark.md)')
    parser.add_argument('--bench', required=True, choices=benchmark.BENCHMARKS)
    parser.add_argument('--params', action='append', default=[], type=cli_checks.existing_dir,
                        help='parameter folder written by train; repeat it with --select best')
    parser.add_argument('--data-root', dest='data_root', required=True, type=cli_checks.existing_dir,
                        help='folder of prepared benchmark datasets, one prepare --out folder per dataset')
    parser.add_argument('--out', required=True, type=cli_checks.out_dir,
                        help='folder for table.md/json/png and per-dataset predictions')
    parser.add_argument('--wheel', type=cli_checks.existing_path, help="AffectGPT's emotion_wheel/ folder (hit rate and OV-MERD+'s F-score)")
    parser.add_argument('--extractor', default='lexicon',
                        help='answer -> labels and sentiment: lexicon (default, deterministic), cache (AffectGPT\'s '
                             'published caches, with --cache) or llm:PATH (an instruct checkpoint, greedy)')
    parser.add_argument('--select', default='single', choices=benchmark.SELECT,
                        help="single: one checkpoint (default); best: every checkpoint's row and the papers' "
                             "per-dataset best of them, labelled as such")
    parser.add_argument('--cache', type=cli_checks.existing_dir, help="AffectGPT's output/ folder (results-<dataset>/...) for --extractor cache")
    parser.add_argument('--checkpoint', help='with --extractor cache: the cached checkpoint to score (e.g. 30)')
    parser.add_argument('--datasets', help='comma-separated subset of the prepared datasets (e.g. MELD,SIMS)')
    parser.add_argument('--batch-size', dest='batch_size', type=cli_checks.positive_int, default=8)
    parser.add_argument('--max-new-tokens', dest='max_new_tokens', type=cli_checks.positive_int,
                        default=GenerationSettings.max_new_tokens)
    args = parser.parse_args(argv)
    try:
        table = benchmark.run_benchmark(
            args.params, args.data_root, args.out, extractor=args.extractor, select=args.select, wheel=args.wheel,
            cache=args.cache, checkpoint=args.checkpoint, batch_size=args.batch_size,
            datasets=args.datasets.split(',') if args.datasets else None, max_new_tokens=args.max_new_tokens)
    except (benchmark.BenchError, ParamsFolderError, FileNotFoundError, ValueError, OSError) as e:
        sys.exit(f'error: {e}')
    if table:
        print(bench_table.markdown(table), end='')
        print(f"wrote {', '.join(table['files'].values())}")


def main(argv=None) -> None:
    distributed.maybe_initialize()
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == '--bench' or a.startswith('--bench=') for a in argv):
        return bench_main(argv)
    parser = cli_checks.Parser(prog='python -m microemo_jax.evaluate', description=__doc__.split('\n')[0])
    parser.add_argument('--params', required=True, type=cli_checks.existing_dir,
                        help='parameter folder written by train (WORKDIR/params)')
    parser.add_argument('--data', required=True, type=cli_checks.existing_dir,
                        help='prepared dataset (prepare --out folder)')
    parser.add_argument('--split', default='validation', choices=('train', 'validation', 'test'))
    parser.add_argument('--out', required=True, type=cli_checks.out_dir,
                        help='folder for per_sample.csv and summary.json')
    parser.add_argument('--synonyms', type=cli_checks.existing_path,
                        help='synonym groups: JSON list, JSON name->groups, or openset-synonym/ folder')
    parser.add_argument('--wheel', type=cli_checks.existing_path,
                        help="MER's wheel_mapping.npz (or JSON with the same keys): emotion-wheel F")
    parser.add_argument('--batch-size', dest='batch_size', type=cli_checks.positive_int, default=8)
    parser.add_argument('--max-new-tokens', dest='max_new_tokens', type=cli_checks.positive_int,
                        default=GenerationSettings.max_new_tokens)
    parser.add_argument('--question', default='description', choices=QUESTIONS,
                        help='prompt to answer: the explanation (default) or the OV-label question')
    parser.add_argument('--limit', type=int, default=None,
                        help='score only the first N videos, N >= 1 (leave it out to score every video); '
                             'summary.json then says it scored a subset')
    parser.add_argument('--groups', type=cli_checks.existing_file,
                        help="CSV 'name,group[,more grouping columns]': scores per group, with intervals")
    parser.add_argument('--shuffle-faces', dest='shuffle_faces', type=cli_checks.int_at_least(0), metavar='SEED',
                        help="give every clip the faces of another clip of the split (a random cycle from SEED)")
    parser.add_argument('--bootstrap', type=cli_checks.int_at_least(0), default=Bootstrap.resamples,
                        help='resamples for the 95%% intervals (percentile bootstrap over clips, seed 0; 0: none)')
    args = parser.parse_args(argv)
    try:
        summary = evaluate(args.params, args.data, args.split, args.out, synonyms=args.synonyms, wheel=args.wheel,
                           batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, question=args.question,
                           limit=args.limit, groups=args.groups, shuffle_faces=args.shuffle_faces,
                           bootstrap=Bootstrap(resamples=args.bootstrap))
    except (EvaluateError, ParamsFolderError, FileNotFoundError, ValueError, OSError) as e:
        sys.exit(f'error: {e}')
    if summary:
        print(format_table(summary))
        print(f"wrote {os.path.join(args.out, 'per_sample.csv')} and {os.path.join(args.out, 'summary.json')}")


if __name__ == '__main__':
    main()
