"""Which split each prepared record lands in, by video, and the account of how that was decided.

All records of one video (``NAME``, ``NAME#ov``) share a split, so validation and test never share a video
with train. ``prepare --split-file`` (``name,split`` with train/validation/test) gives an official split;
videos it does not list get the default, a stable hash of the video name (``split_of``:
``validation_fraction`` of the videos in validation, the rest in train).
``OUT/splits.csv`` lists the result per video.
"""
from __future__ import annotations

import csv
import hashlib
import os
import sys

from microemo_jax.csv_cells import escape_row
from microemo_jax.data.raw.labels import read_split_file, video_key

SPLITS = ('train', 'validation', 'test')


def video_of(name: str) -> str:
    """The video a record comes from: its name before '#' (``NAME#ov`` -> ``NAME``)."""
    return str(name).split('#', 1)[0]


def split_of(name: str, validation_fraction: float) -> str:
    """'validation' for a stable ``validation_fraction`` of videos, else 'train' (all targets of a video agree)."""
    h = int.from_bytes(hashlib.sha256(video_of(name).encode('utf-8')).digest()[:8], 'big') / 2 ** 64
    return 'validation' if h < validation_fraction else 'train'


def check_by_video(assignment: dict[str, str]) -> None:
    """Raise ValueError when two records of one video are assigned to different splits."""
    seen: dict[str, tuple[str, str]] = {}
    for name, split in assignment.items():
        video = video_of(name)
        first = seen.setdefault(video, (name, split))
        if first[1] != split:
            raise ValueError(f"records {first[0]!r} ({first[1]}) and {name!r} ({split}) come from one video "
                             f"{video!r} but were assigned to different splits")


def split_overlap(names_by_split: dict[str, list[str]]) -> dict:
    """Videos per split and the videos found in more than one split (a leak: should be none)."""
    videos = {split: {video_of(n) for n in names} for split, names in names_by_split.items()}
    shared = sorted({v for a in videos for b in videos if a < b for v in videos[a] & videos[b]})
    return {'videos': {s: len(v) for s, v in videos.items()}, 'videos_in_several_splits': len(shared),
            'examples': shared[:10]}


def names_preview(names: list[str], limit: int = 5) -> str:
    """The first ``limit`` names, quoted, and how many more: for one-line messages."""
    shown = ', '.join(repr(n) for n in names[:limit])
    return shown + (f' and {len(names) - limit} more' if len(names) > limit else '')


def assign_splits(names: list[str], *, validation_fraction: float, split_file: str | None = None,
                  corpus_names: list[str] = (), official: dict[str, str] | None = None) -> tuple[dict[str, str], dict]:
    """Record name -> split, by video (all targets of a video together), and the account of how.

    With ``split_file`` its videos get its split; else ``official`` (record name -> split, the source's own,
    e.g. the benchmark sources' test set) gives them; a written video absent from both gets the hashed
    default (train/validation by ``validation_fraction``); names in the file that the corpus lacks are reported."""
    info = {'by': 'video', 'validation_fraction': validation_fraction, 'split_file': None,
            'default': f'stable hash of the video name: {validation_fraction:g} of the videos in validation, '
                       f'the rest in train'}
    given = read_split_file(split_file) if split_file else {}
    if official and not split_file:
        given = {video_key(n): (s, 'the source') for n, s in official.items()}
        info['official'] = 'the split the source gives (' + ', '.join(sorted(set(official.values()))) + ')'
    assignment, unlisted = {}, set()
    for name in names:
        key = video_key(name)
        if key in given:
            assignment[name] = given[key][0]
        else:
            assignment[name] = split_of(name, validation_fraction)
            unlisted.add(video_of(name))
    if split_file:
        corpus = {video_key(n) for n in corpus_names} | {video_key(n) for n in names}
        written = {video_key(n) for n in names}
        missing = sorted(v for v in given if v not in corpus)
        not_written = sorted(v for v in given if v in corpus and v not in written)
        info['split_file'] = {
            'path': os.path.abspath(split_file), 'videos': len(given),
            'not_in_corpus': {'count': len(missing), 'examples': missing[:20]},
            'in_corpus_but_skipped': {'count': len(not_written), 'examples': not_written[:20]},
            'not_in_split_file': {'count': len(unlisted), 'examples': sorted(unlisted)[:20],
                                  'assigned': 'the default split (' + info['default'] + ')'}}
        for what, items, tail in (('name(s) in the split file are not in the corpus', missing, ''),
                                  ('written video(s) are not in the split file', sorted(unlisted),
                                   ': they get the default hashed train/validation split')):
            if items:
                print(f"warning: {len(items)} {what} ({names_preview(items)}){tail}", file=sys.stderr, flush=True)
    check_by_video(assignment)
    by_split: dict[str, list[str]] = {}
    for name, split in assignment.items():
        by_split.setdefault(split, []).append(name)
    info['records'] = {s: len(by_split[s]) for s in SPLITS if s in by_split}
    info.update(split_overlap(by_split))
    return assignment, info


def write_splits_csv(path: str, assignment: dict[str, str]) -> None:
    """``name,split`` per video (the form ``--split-file`` reads back)."""
    with open(path, 'w', encoding='utf-8', newline='') as f:
        w = csv.writer(f)
        w.writerow(['name', 'split'])
        for video, split in sorted({(video_of(n), s) for n, s in assignment.items()}):
            w.writerow(escape_row([video, split]))   # a name like '=SUM(..)' is not a formula (csv_cells)
