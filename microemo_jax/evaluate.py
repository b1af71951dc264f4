"""Score a trained model on a prepared split: generate for every clip, extract labels, compute the OV metrics.

    python -m microemo_jax.evaluate --params WORKDIR/params --data PREPARED --split validation|test --out DIR \
        [--synonyms F] [--wheel F] [--batch-size 8] [--max-new-tokens 256] [--question description|ov]

One generation per video: a clip prepared with both a description and OV labels (records ``NAME`` and
``NAME#ov``) is asked the ``--question`` prompt once, and its gold labels are the clip's OV labels.
The answer's labels come from ``metrics.extract_labels`` (the "emotional state is a, b, c." form, else the
emotion words of the explanation). Writes ``per_sample.csv`` (name, gold, predicted, explanation) and
``summary.json`` (scores, ``n``, a majority-label baseline scored the same way, generation settings).
The baseline predicts, for every clip, the most frequent gold label of the training split (of the
evaluated split when the dataset has no training split; ``summary.json`` says which).

Multi-process runs (``jax.distributed``) give each process every P-th video; process 0 gathers the
parts (written under OUT/parts/, so OUT must be on a filesystem all processes share) and scores.
"""
from __future__ import annotations

import argparse
import os
import sys

from microemo_jax.inference.scoring import QUESTIONS, EvaluateError, evaluate
from microemo_jax.inference.settings import GenerationSettings
from microemo_jax.metrics.per_sample import format_table
from microemo_jax.params import ParamsFolderError
from microemo_jax.training import distributed


def main(argv=None) -> None:
    distributed.maybe_initialize()
    parser = argparse.ArgumentParser(prog='python -m microemo_jax.evaluate', description=__doc__.split('\n')[0])
    parser.add_argument('--params', required=True, help='parameter folder written by train (WORKDIR/params)')
    parser.add_argument('--data', required=True, help='prepared dataset (prepare --out folder)')
    parser.add_argument('--split', default='validation', choices=('train', 'validation', 'test'))
    parser.add_argument('--out', required=True, help='folder for per_sample.csv and summary.json')
    parser.add_argument('--synonyms', help='synonym groups: JSON list, JSON name->groups, or openset-synonym/ folder')
    parser.add_argument('--wheel', help="MER's wheel_mapping.npz (or JSON with the same keys): emotion-wheel F")
    parser.add_argument('--batch-size', dest='batch_size', type=int, default=8)
    parser.add_argument('--max-new-tokens', dest='max_new_tokens', type=int,
                        default=GenerationSettings.max_new_tokens)
    parser.add_argument('--question', default='description', choices=QUESTIONS,
                        help='prompt to answer: the explanation (default) or the OV-label question')
    parser.add_argument('--limit', type=int, default=0, help='evaluate only the first N videos (0: all)')
    args = parser.parse_args(argv)
    try:
        summary = evaluate(args.params, args.data, args.split, args.out, synonyms=args.synonyms, wheel=args.wheel,
                           batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, question=args.question,
                           limit=args.limit)
    except (EvaluateError, ParamsFolderError, FileNotFoundError, ValueError, OSError) as e:
        sys.exit(f'error: {e}')
    if summary:
        print(format_table(summary))
        print(f"wrote {os.path.join(args.out, 'per_sample.csv')} and {os.path.join(args.out, 'summary.json')}")


if __name__ == '__main__':
    main()
