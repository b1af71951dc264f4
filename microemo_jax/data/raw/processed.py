"""AffectGPT's processed benchmark folders (``*-process``): the label ``.npz`` files and renamed clips.

Where a user has these instead of the datasets' own files, the gold is the one the official scorer reads
(``metrics.official_files.load_label_npz``: the restricted unpickler, never ``allow_pickle``), the names are
already the benchmark's, and the clips are where AffectGPT's ``config.py`` (fffca79) puts them: MER2023 and
MER2024 ``video/``, MELD ``subvideo/``, IEMOCAP ``subvideo-tgt/`` (the speaker's half, already cut), MOSI
``subvideo/``, MOSEI ``subvideo_new/``, SIMS ``video/``, SIMS v2 ``video_new/`` (each also falling back to
``video/``, ``subvideo/`` and the folder itself); audio ``subaudio/`` or ``audio/``; OpenFace crops
``openface_face/``; subtitles from ``transcription-engchi-polish.csv`` and the other tables of
``bench_files.SUBTITLE_FILES``. OV-MERD+'s processed folder is its raw one (``ovlabel.csv``: ``mer.py``).
"""
from __future__ import annotations

import os

from microemo_jax.data.raw.bench_files import BenchRow, VideoDirs, audio_wav, find_file, openface_npy, subtitles
from microemo_jax.data.raw.files import Skip, unsafe_name_reason
from microemo_jax.metrics.official_files import load_label_npz

LABEL_NPZ = {'MER2023': 'label-6way.npz', 'MER2024': 'label-6way.npz', 'MELD': 'label.npz',
             'IEMOCAPFour': 'label_4way.npz', 'CMUMOSI': 'label.npz', 'CMUMOSEI': 'label.npz', 'SIMS': 'label.npz',
             'SIMSv2': 'label.npz'}
VIDEO_DIRS = {'MER2023': 'video', 'MER2024': 'video', 'MELD': 'subvideo', 'IEMOCAPFour': 'subvideo-tgt',
              'CMUMOSI': 'subvideo', 'CMUMOSEI': 'subvideo_new', 'SIMS': 'video', 'SIMSv2': 'video_new'}


def label_npz(root: str, dataset: str) -> str | None:
    return find_file(root, (LABEL_NPZ[dataset],)) if dataset in LABEL_NPZ else None


def present(root: str, dataset: str) -> bool:
    return label_npz(root, dataset) is not None


def read(root: str, dataset: str, skips: list[Skip], notes: list[str], splits=('test',)) -> list[BenchRow]:
    """The test rows of the label .npz (the processed files hold the other splits too, but the official
    reader used here gives the test set only, so ``splits`` must include 'test')."""
    path = label_npz(root, dataset)
    if path is None:
        raise FileNotFoundError(f"{root}: no {LABEL_NPZ.get(dataset, 'label .npz')} for {dataset}")
    if 'test' not in splits:
        return []
    gold = load_label_npz(path, dataset)
    subtitle = subtitles(root, notes)
    videos = VideoDirs(root, tuple(dict.fromkeys((VIDEO_DIRS[dataset], 'video', 'subvideo', ''))))
    base = os.path.basename(path)
    rows = []
    for i, (name, value) in enumerate(gold.items()):
        row = BenchRow(name=name, gold=value, split='test', where=f'{base} entry {i}', subtitle=subtitle.get(name, ''))
        if not unsafe_name_reason(name):
            row.video = videos.find(name)
            row.missing = '' if row.video else videos.where(name)
            row.audio_file, row.faces_npy = audio_wav(root, name), openface_npy(root, name)
        rows.append(row)
    return rows
