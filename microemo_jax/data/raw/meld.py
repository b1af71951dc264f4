"""MELD as MER-UniBench reads it: ``{train,dev,test}_sent_emo.csv`` and the ``dia{D}_utt{U}.mp4`` clips.

Facts (declare-lab/MELD's release; AffectGPT fffca79 ``toolkit/preprocess/meld.py``): each csv row is one
utterance with columns ``Sr No., Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID,
Season, Episode, StartTime, EndTime``; its clip is ``dia{Dialogue_ID}_utt{Utterance_ID}.mp4`` in the split's
folder (``train_splits/``, ``dev_splits_complete/``, ``output_repeated_splits_test/``, possibly under
``train/``, ``dev/``, ``test/``). The benchmark names a clip ``{split}_dia{D}_utt{U}`` (split ``train``,
``val``, ``test``), with the ids as integers; the emotion is one of anger, joy, sadness, neutral, disgust,
fear, surprise. The test set is ``test_sent_emo.csv``: 2610 rows. The ``Utterance`` text is the subtitle.
"""
from __future__ import annotations

import os

from microemo_jax.data.raw.bench_files import BenchRow, VideoDirs, read_table
from microemo_jax.data.raw.files import Skip
from microemo_jax.metrics.official_files import MELD_CLASSES

# (csv, the benchmark's name prefix, split, folders that hold the clips, best first)
SPLITS = (
    ('test_sent_emo.csv', 'test', 'test',
     ('output_repeated_splits_test', 'test/output_repeated_splits_test', 'MELD.Raw/test/output_repeated_splits_test',
      'test_splits', 'test')),
    ('dev_sent_emo.csv', 'val', 'validation',
     ('dev_splits_complete', 'dev/dev_splits_complete', 'MELD.Raw/dev/dev_splits_complete', 'dev_splits', 'dev')),
    ('train_sent_emo.csv', 'train', 'train',
     ('train_splits', 'train/train_splits', 'MELD.Raw/train/train_splits', 'train')),
)
LABEL_DIRS = ('', 'data/MELD', 'MELD.Raw', 'MELD', 'test', 'dev', 'train')
REQUIRED = ('utterance', 'emotion', 'dialogue_id', 'utterance_id')


def _label_file(root: str, name: str) -> str | None:
    for sub in LABEL_DIRS:
        path = os.path.join(root, sub, name)
        if os.path.isfile(path):
            return path
    return None


def _int(cell: str, column: str) -> int:
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f'{column} {cell!r} is not a number') from None
    if value != int(value) or value < 0:
        raise ValueError(f'{column} {cell!r} is not a non-negative whole number')
    return int(value)


def present(root: str) -> bool:
    return _label_file(root, 'test_sent_emo.csv') is not None


def read(root: str, skips: list[Skip], notes: list[str], splits=('test',)) -> list[BenchRow]:
    """The rows of the wanted splits (the other splits' label files are not read)."""
    rows = []
    for csv_name, prefix, split, folders in SPLITS:
        if split not in splits:
            continue
        path = _label_file(root, csv_name)
        if path is None:
            raise FileNotFoundError(f"{root}: no {csv_name} (looked in {', '.join(d or '.' for d in LABEL_DIRS)}); "
                                    f"the meld layout needs MELD's {csv_name} and its clips")
        table, bad, more = read_table(path, REQUIRED)
        skips.extend(bad)
        notes.extend(more)
        videos = VideoDirs(root, folders)
        processed = VideoDirs(root, ('subvideo', 'video'))
        for line, cells in table:
            where = f'{csv_name} line {line}'
            try:
                dia, utt = _int(cells['dialogue_id'], 'Dialogue_ID'), _int(cells['utterance_id'], 'Utterance_ID')
                emotion = cells['emotion'].strip().lower()
                if emotion not in MELD_CLASSES:
                    raise ValueError(f"Emotion {cells['emotion']!r} is not one of {', '.join(MELD_CLASSES)}")
            except ValueError as e:
                skips.append(Skip(f'{csv_name}:{line}', f'malformed_row: {where}: {e}'))
                continue
            clip = f'dia{dia}_utt{utt}'
            name = f'{prefix}_{clip}'
            video = videos.find(clip) or processed.find(name)
            rows.append(BenchRow(name=name, gold=emotion, split=split, where=where,
                                 subtitle=' '.join(cells['utterance'].split()), video=video,
                                 missing='' if video else videos.where(clip)))
    return rows
