"""Print one JSON line per record of a prepared dataset: what each clip became.

    python -m microemo_jax.data.describe OUT [--split train|validation|test|all]

Fields: name, video (the name before '#': a clip's targets share it), split, num_frames, timestamps,
faces_found (anchors with at least one face crop), num_utterances, utterance_source (where the spans came
from: subtitles, utterance_file, asr-whisper, asr-pocketsphinx, vad or whole), num_tokens, num_answer_tokens.
Then, on stderr, one summary line: records and videos per split and the videos found in more than one split (``videos_in_several_splits``, 0 for an honest split).
"""
from __future__ import annotations

import json
import sys

import numpy as np

from microemo_jax import cli_checks
from microemo_jax.data.raw.splits import split_overlap, video_of
from microemo_jax.data.records.tfds_builder import open_dataset, splits as dataset_splits


def summarize(rec: dict) -> dict:
    text = lambda v: v.decode('utf-8') if isinstance(v, bytes) else str(v)  # noqa: E731
    return {
        'name': text(rec['name']),
        'video': video_of(text(rec['name'])),
        'num_frames': int(len(rec['timestamps'])),
        'timestamps': [round(float(t), 3) for t in rec['timestamps']],
        'faces_found': int(np.asarray(rec['face_mask']).any(axis=-1).sum()),
        'num_utterances': int(len(rec['utterances'])),
        'utterance_source': text(rec['utterance_source']),
        'num_tokens': int(len(rec['input_ids'])),
        'num_answer_tokens': int(np.asarray(rec['loss_mask']).sum()),
    }


def main(argv=None) -> None:
    parser = cli_checks.Parser(prog='python -m microemo_jax.data.describe', description=__doc__.split('\n')[0])
    parser.add_argument('dir', type=cli_checks.existing_dir, help='the --out folder of prepare')
    parser.add_argument('--split', default='all', choices=('train', 'validation', 'test', 'all'))
    args = parser.parse_args(argv)
    names: dict[str, list[str]] = {}
    try:
        for split in dataset_splits(args.dir) if args.split == 'all' else (args.split,):
            source = open_dataset(args.dir, split)
            for i in range(len(source)):
                line = {**summarize(source[i]), 'split': split}
                names.setdefault(split, []).append(line['name'])
                print(json.dumps(line, ensure_ascii=False))
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    summary = {'records': {s: len(n) for s, n in names.items()}, **split_overlap(names)}
    print('summary: ' + json.dumps(summary, ensure_ascii=False), file=sys.stderr)


if __name__ == '__main__':
    main()
