"""The end of ``make demo``: score the trained demo model on the held-out split and explain one held-out clip.

    python -m microemo_jax.demo.report PARAMS_DIR --out DIR [--split validation]

Prints the model against the majority-label baseline (Accuracy_s, Recall_s, avg on the clean split,
which shares no video with train), then the explanation of the first held-out clip with the path of
its timeline picture. Everything it needs comes from the parameter folder (which records the prepared
data and the raw corpus it came from).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from microemo_jax.inference.scoring import EvaluateError, evaluate
from microemo_jax.inference.settings import GenerationSettings
from microemo_jax.inference.videos import PredictError, Predictor, find_videos, raw_video
from microemo_jax.metrics.per_sample import format_table, read_per_sample
from microemo_jax.params import ParamsFolderError, training_info


def held_out_video(summary: dict, raw_dir: str) -> str:
    """The raw video of the first evaluated clip."""
    name = read_per_sample(os.path.join(summary['out'], 'per_sample.csv'))[0]['name']
    video = raw_video(raw_dir, name)
    if video is None:
        raise FileNotFoundError(f"no video for the held-out clip {name!r} in {raw_dir}")
    return video


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog='python -m microemo_jax.demo.report', description=__doc__.split('\n')[0])
    parser.add_argument('params', help='the demo parameter folder (runs/demo/stage2/params)')
    parser.add_argument('--out', required=True)
    parser.add_argument('--split', default='validation')
    parser.add_argument('--max-new-tokens', dest='max_new_tokens', type=int,
                        default=GenerationSettings.max_new_tokens)
    args = parser.parse_args(argv)
    info = training_info(args.params)
    if not info.get('data_dir'):
        sys.exit(f"error: {args.params} does not record its training data (training.json); train it with "
                 f"`make demo` first")
    try:
        summary = evaluate(args.params, info['data_dir'], args.split, os.path.join(args.out, 'evaluate'),
                           max_new_tokens=args.max_new_tokens)
        summary['out'] = os.path.join(args.out, 'evaluate')
        video = held_out_video(summary, info['raw'])
        predictor = Predictor(args.params, max_new_tokens=args.max_new_tokens)
        result, = predictor.explain_clips(find_videos(video, None), out=os.path.join(args.out, 'predict'))
    except (EvaluateError, ParamsFolderError, PredictError, FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    print('\n' + format_table(summary))
    print(f"\nheld-out clip {result['name']} ({video}):\n  {result['explanation']}\n"
          f"  labels: {', '.join(result['labels']) or '(none)'}\n  timeline: {result['timeline']}")
    with open(os.path.join(args.out, 'demo_report.json'), 'w') as f:
        json.dump({'evaluate': summary, 'held_out': result}, f, indent=2, ensure_ascii=False)


if __name__ == '__main__':
    main()
