"""The end of ``make demo``: score the trained demo model on the held-out split and explain one held-out clip.

    python -m microemo_jax.demo.report PARAMS_DIR --out DIR [--split validation]

Prints the model against the majority-label baseline (Accuracy_s, Recall_s, avg on the clean split,
which shares no video with train, with 95% bootstrap intervals), the scores per scenario and for the
micro-expression clips (the corpus's ``groups.csv``, written for an older corpus into DIR), the error of the
times the explanations state, then the explanation of the first held-out clip with the path of its
timeline picture. Everything it needs comes from the parameter folder (which records the prepared data and
the raw corpus it came from).
"""
from __future__ import annotations

import json
import os
import sys

from microemo_jax import cli_checks
from microemo_jax.demo.corpus import GROUPS_FILE, write_groups
from microemo_jax.inference.scoring import EvaluateError, evaluate
from microemo_jax.inference.settings import GenerationSettings
from microemo_jax.inference.videos import PredictError, Predictor, find_videos, raw_video
from microemo_jax.metrics.per_sample import format_table, read_per_sample
from microemo_jax.params import ParamsFolderError, training_info
from microemo_jax.safe_paths import inside


def held_out_video(summary: dict, raw_dir: str) -> str:
    """The raw video of the first evaluated clip."""
    name = read_per_sample(os.path.join(summary['out'], 'per_sample.csv'))[0]['name']
    video = raw_video(raw_dir, name)
    if video is None:
        raise FileNotFoundError(f"no video for the held-out clip {name!r} in {raw_dir}")
    return video


def groups_file(raw_dir: str | None, out: str) -> str | None:
    """The demo corpus's groups.csv; for a corpus made before it existed, one written into ``out``; None when
    the raw corpus is unknown or not a demo corpus."""
    if not raw_dir:
        return None
    path = os.path.join(raw_dir, GROUPS_FILE)
    if os.path.isfile(path):
        return path
    if not os.path.isfile(os.path.join(raw_dir, 'corpus.json')):
        return None
    os.makedirs(out, exist_ok=True)
    return write_groups(raw_dir, inside(out, GROUPS_FILE))


def main(argv=None) -> None:
    parser = cli_checks.Parser(prog='python -m microemo_jax.demo.report', description=__doc__.split('\n')[0])
    parser.add_argument('params', type=cli_checks.existing_dir,
                        help='the demo parameter folder (runs/demo/stage2/params)')
    parser.add_argument('--out', required=True, type=cli_checks.out_dir)
    parser.add_argument('--split', default='validation', choices=('train', 'validation', 'test'))
    parser.add_argument('--max-new-tokens', dest='max_new_tokens', type=cli_checks.positive_int,
                        default=GenerationSettings.max_new_tokens)
    args = parser.parse_args(argv)
    try:
        info = training_info(args.params)
    except (ParamsFolderError, OSError, ValueError) as e:
        cli_checks.fail(e)
    if not info.get('data_dir'):
        sys.exit(f"error: {args.params} does not record its training data (training.json); train it with "
                 f"`make demo` first")
    try:
        summary = evaluate(args.params, info['data_dir'], args.split, inside(args.out, 'evaluate'),
                           max_new_tokens=args.max_new_tokens, groups=groups_file(info.get('raw'), args.out))
        summary['out'] = inside(args.out, 'evaluate')
        video = held_out_video(summary, info['raw'])
        predictor = Predictor(args.params, max_new_tokens=args.max_new_tokens)
        result, = predictor.explain_clips(find_videos(video, None), out=inside(args.out, 'predict'))
    except (EvaluateError, ParamsFolderError, PredictError, FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    print('\n' + format_table(summary))
    print(f"\nheld-out clip {result['name']} ({video}):\n  {result['explanation']}\n"
          f"  labels: {', '.join(result['labels']) or '(none)'}\n  timeline: {result['timeline']}")
    try:
        with open(inside(args.out, 'demo_report.json'), 'w') as f:
            json.dump({'evaluate': summary, 'held_out': result}, f, indent=2, ensure_ascii=False)
    except (OSError, ValueError) as e:
        cli_checks.fail(e)


if __name__ == '__main__':
    main()
