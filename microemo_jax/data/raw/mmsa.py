"""The four sentiment datasets (CMU-MOSI, CMU-MOSEI, CH-SIMS, CH-SIMS v2) from their plain label csv.

The CMU-MultimodalSDK ships MOSI/MOSEI labels as HDF5 computational sequences, and AffectGPT's own
preprocessing (fffca79 ``toolkit/preprocess/cmumosi.py``, ``cmumosei.py``) reads a pickle of its feature
toolkit. The plain files that carry the same values and the same splits are the ones THUIAR's MMSA
distributes with the raw clips, and that AffectGPT reads for the two SIMS sets (``simsv2.py``):

* ``label.csv`` (MOSI, MOSEI, SIMS) or ``meta.csv`` (SIMS v2) with columns ``video_id, clip_id, text, label,
  label_T, label_A, label_V, annotation, mode`` (the per-modality columns only for SIMS); ``label`` is the
  valence (-3..3 for MOSI/MOSEI, -1..1 for SIMS), ``mode`` the split (train / valid / test);
* clips ``Raw/{video_id}/{clip_id}.mp4``.

The benchmark's names (AffectGPT's processed ``label.npz``) are ``{video_id}_{clip_id}``, except CH-SIMS,
whose clip number is written with four digits (``video_0001_0001``, from ``Raw/video_0001/0001.mp4``). The
test sets have 686 (MOSI), 4659 (MOSEI), 457 (SIMS) and 1034 (SIMS v2) clips. A clip flat in ``Raw/``,
``video/``, ``subvideo/``, ``subvideo_new/``, ``video_new/``, ``Video/Segmented/`` or the folder itself, named
like the benchmark (the original MOSI release and AffectGPT's processed folders), is found too.
"""
from __future__ import annotations

import math
import os

from microemo_jax.data.raw.bench_files import (
    BenchRow,
    VideoDirs,
    audio_wav,
    find_file,
    openface_npy,
    read_table,
    split_name,
)
from microemo_jax.data.raw.files import VIDEO_EXTENSIONS, Skip, unsafe_name_reason

LABEL_FILES = {'CMUMOSI': ('label.csv',), 'CMUMOSEI': ('label.csv',), 'SIMS': ('label.csv',),
               'SIMSv2': ('meta.csv', 'label.csv')}
FLAT_DIRS = ('Raw', 'video', 'subvideo', 'subvideo_new', 'video_new', 'Video/Segmented', '')


def label_file(root: str, dataset: str) -> str | None:
    return find_file(root, LABEL_FILES[dataset], ('', 'metadata'))


def present(root: str, dataset: str) -> bool:
    return label_file(root, dataset) is not None


def clip_name(dataset: str, video_id: str, clip_id: str) -> str:
    if dataset == 'SIMS' and clip_id.isdigit():
        return f'{video_id}_{int(clip_id):04d}'
    return f'{video_id}_{clip_id}'


def _clip_files(clip_id: str) -> list[str]:
    """The file stems a clip may have inside ``Raw/{video_id}/``: as written, and as a number written plainly or
    with 4 or 5 digits (the releases differ)."""
    stems = [clip_id]
    if clip_id.isdigit():
        n = int(clip_id)
        stems += [str(n), f'{n:04d}', f'{n:05d}']
    return list(dict.fromkeys(stems))


def _in_raw(root: str, video_id: str, clip_id: str) -> str | None:
    folder = os.path.join(root, 'Raw', video_id)
    if not os.path.isdir(folder):
        return None
    for stem in _clip_files(clip_id):
        for ext in VIDEO_EXTENSIONS:
            for e in (ext, ext.upper()):
                path = os.path.join(folder, stem + e)
                if os.path.isfile(path):
                    return path
    return None


def read(root: str, dataset: str, skips: list[Skip], notes: list[str], splits=('test',)) -> list[BenchRow]:
    path = label_file(root, dataset)
    if path is None:
        raise FileNotFoundError(f"{root}: no {' or '.join(LABEL_FILES[dataset])} (video_id, clip_id, text, label, "
                                f"mode): the {dataset} layout is MMSA's folder (label.csv and Raw/), or AffectGPT's "
                                f"processed folder with label.npz")
    base = os.path.basename(path)
    table, bad, more = read_table(path, ('video_id', 'clip_id', 'label', 'mode'))
    skips.extend(bad)
    notes.extend(more)
    flat = VideoDirs(root, FLAT_DIRS)
    rows = []
    for line, cells in table:
        where = f'{base} line {line}'
        video_id, clip_id = cells['video_id'].strip(), cells['clip_id'].strip()
        try:
            if not video_id or not clip_id:
                raise ValueError('empty video_id or clip_id')
            split = split_name(cells['mode'], where)
            val = float(cells['label'])
            if not math.isfinite(val):
                raise ValueError(f"label {cells['label']!r} is not a finite number")
        except ValueError as e:
            skips.append(Skip(f'{base}:{line}', f'malformed_row: {where}: {e}'))
            continue
        if split not in splits:
            continue
        name = clip_name(dataset, video_id, clip_id)
        if unsafe_name_reason(video_id) or unsafe_name_reason(clip_id) or unsafe_name_reason(name):
            rows.append(BenchRow(name=name, gold=val, split=split, where=where))   # bench.py skips it, unread
            continue
        video = _in_raw(root, video_id, clip_id) or flat.find(name)
        rows.append(BenchRow(name=name, gold=val, split=split, where=where,
                             subtitle=' '.join(cells.get('text', '').split()), video=video,
                             missing='' if video else f'no Raw/{video_id}/{clip_id}.mp4; ' + flat.where(name),
                             audio_file=audio_wav(root, name), faces_npy=openface_npy(root, name)))
    return rows
