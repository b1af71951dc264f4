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
like the benchmark (the original MOSI release and AffectGPT's processed folders), is found too. CH-SIMS as
first released (``metadata/sentiment/label_M.csv`` with the split in ``metadata/test_index.csv``, what
AffectGPT's ``toolkit/preprocess/sims.py`` reads) is read too, where its ``label.csv`` is not there.
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
ORIGINAL_SIMS = (('metadata', 'sentiment', 'label_M.csv'), ('metadata', 'test_index.csv'))
FLAT_DIRS = ('Raw', 'video', 'subvideo', 'subvideo_new', 'video_new', 'Video/Segmented', '')


def label_file(root: str, dataset: str) -> str | None:
    return find_file(root, LABEL_FILES[dataset], ('', 'metadata'))


def _has_original_sims(root: str) -> bool:
    return all(os.path.isfile(os.path.join(root, *p)) for p in ORIGINAL_SIMS)


def present(root: str, dataset: str) -> bool:
    return label_file(root, dataset) is not None or (dataset == 'SIMS' and _has_original_sims(root))


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


def _row(root: str, dataset: str, flat: VideoDirs, video_id: str, clip_id: str, val: float, split: str, where: str,
         subtitle: str) -> BenchRow:
    name = clip_name(dataset, video_id, clip_id)
    if unsafe_name_reason(video_id) or unsafe_name_reason(clip_id) or unsafe_name_reason(name):
        return BenchRow(name=name, gold=val, split=split, where=where)        # bench.py skips it, unread
    video = _in_raw(root, video_id, clip_id) or flat.find(name)
    return BenchRow(name=name, gold=val, split=split, where=where, subtitle=' '.join(subtitle.split()), video=video,
                    missing='' if video else f'no Raw/{video_id}/{clip_id}.mp4; ' + flat.where(name),
                    audio_file=audio_wav(root, name), faces_npy=openface_npy(root, name))


def _value(cell: str) -> float:
    val = float(cell)
    if not math.isfinite(val):
        raise ValueError(f"label {cell!r} is not a finite number")
    return val


def _sims_original(root: str, skips: list[Skip], notes: list[str], splits) -> list[BenchRow]:
    """CH-SIMS as released (what AffectGPT's ``toolkit/preprocess/sims.py`` reads): ``metadata/sentiment/label_M.csv``
    (``video_id, clip_id, label``), the split as row positions in ``metadata/{train,val,test}_index.csv``
    (column ``index``), subtitles from ``metadata/Translation.csv`` (``English``)."""
    labels = os.path.join(root, *ORIGINAL_SIMS[0])
    table, bad, more = read_table(labels, ('video_id', 'clip_id', 'label'))
    skips.extend(bad)
    notes.extend(more)
    lines = sorted([line for line, _ in table] + [int(s.name.rsplit(':', 1)[1]) for s in bad])  # pandas' positions
    split_of = {}
    for split, index_file in (('test', 'test_index.csv'), ('validation', 'val_index.csv'), ('train', 'train_index.csv')):
        path = os.path.join(root, 'metadata', index_file)
        if split in splits and os.path.isfile(path):
            for line, cells in read_table(path, ('index',))[0]:
                try:
                    split_of[lines[int(cells['index'])]] = split
                except (ValueError, IndexError):
                    skips.append(Skip(f'{index_file}:{line}', f"malformed_row: {index_file} line {line}: index "
                                                             f"{cells['index']!r} is not a row of label_M.csv"))
    english = {}
    translation = os.path.join(root, 'metadata', 'Translation.csv')
    if os.path.isfile(translation):
        for _, cells in read_table(translation, ('video_id', 'clip_id'))[0]:
            english[(cells['video_id'].strip(), cells['clip_id'].strip().lstrip('0'))] = cells.get('english', '')
    flat = VideoDirs(root, FLAT_DIRS)
    rows = []
    for line, cells in table:
        if line not in split_of:
            continue
        where = f'label_M.csv line {line}'
        video_id, clip_id = cells['video_id'].strip(), cells['clip_id'].strip()
        try:
            val = _value(cells['label'])
        except ValueError as e:
            skips.append(Skip(f'label_M.csv:{line}', f'malformed_row: {where}: {e}'))
            continue
        rows.append(_row(root, 'SIMS', flat, video_id, clip_id, val, split_of[line], where,
                         english.get((video_id, clip_id.lstrip('0')), '')))
    return rows


def read(root: str, dataset: str, skips: list[Skip], notes: list[str], splits=('test',)) -> list[BenchRow]:
    path = label_file(root, dataset)
    if path is None and dataset == 'SIMS' and _has_original_sims(root):
        return _sims_original(root, skips, notes, splits)
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
            val = _value(cells['label'])
        except ValueError as e:
            skips.append(Skip(f'{base}:{line}', f'malformed_row: {where}: {e}'))
            continue
        if split in splits:
            rows.append(_row(root, dataset, flat, video_id, clip_id, val, split, where, cells.get('text', '')))
    return rows
