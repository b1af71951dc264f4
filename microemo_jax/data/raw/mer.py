"""MER2023, MER2024 and OV-MERD+ as MER-UniBench reads them (the MER challenges' own label files).

Facts (AffectGPT fffca79 ``toolkit/preprocess/mer2023.py``, ``mer2024.py``,
``my_affectgpt/datasets/datasets/ovmerdplus_dataset.py``):

* MER2023: ``test1-label.csv`` (``name, discrete, valence``) and the clips in ``test1/`` (``NAME.mp4`` or
  ``.avi``); the test set is test1, 411 clips, gold the ``discrete`` word;
* MER2024: ``semi-label.csv`` (``name, discrete``); the benchmark's test1 is the first half of its rows
  (``names[:int(len(names)/2)]``: the shuffle before it is not applied), 1169 clips; clips in
  ``video-unlabeled/``;
* OV-MERD+: ``ovlabel.csv`` (``name, openset``), the test names those of ``subtitle_eng.csv`` (``name,
  sentence``, 532 rows; without it every ``ovlabel.csv`` row is a test clip), clips in ``video/``.

Clips are also found in ``video/`` and in the folder itself; subtitles come from the first of
``subtitle_chieng.csv``, ``subtitle_eng.csv``, ``transcription-engchi-polish.csv``, ``transcription.csv``,
``transcription_merge.csv`` that is present (its ``english`` column, else ``sentence``, else ``chinese``).
"""
from __future__ import annotations

from microemo_jax.data.raw.bench_files import (
    BenchRow,
    VideoDirs,
    audio_wav,
    find_file,
    openface_npy,
    read_table,
    subtitles,
)
from microemo_jax.data.raw.files import Skip, unsafe_name_reason

LABELS = {'MER2023': ('test1-label.csv', 'discrete', ('test1', 'video', '')),
          'MER2024': ('semi-label.csv', 'discrete', ('video-unlabeled', 'video', '')),
          'OVMERDPlus': ('ovlabel.csv', 'openset', ('video', ''))}


def present(root: str, dataset: str) -> bool:
    return find_file(root, (LABELS[dataset][0],)) is not None


def _test_names(root: str, notes: list[str]) -> list[str] | None:
    path = find_file(root, ('subtitle_eng.csv',))
    if path is None:
        return None
    rows, _, more = read_table(path, ('name',))
    notes.extend(more)
    return [cells['name'].strip() for _, cells in rows if cells['name'].strip()]


def read(root: str, dataset: str, skips: list[Skip], notes: list[str], splits=('test',)) -> list[BenchRow]:
    label_name, column, video_dirs = LABELS[dataset]
    path = find_file(root, (label_name,))
    if path is None:
        raise FileNotFoundError(f"{root}: no {label_name} (name, {column}); the {dataset} layout needs it, or "
                                f"AffectGPT's processed folder with its label .npz")
    table, bad, more = read_table(path, ('name', column))
    skips.extend(bad)
    notes.extend(more)
    test = None                        # MER2023, OV-MERD+: every row is a test row
    if dataset == 'MER2024':           # the first half of the data rows (unreadable ones count too)
        order = sorted([line for line, _ in table] + [int(s.name.rsplit(':', 1)[1]) for s in bad])
        test = set(order[:len(order) // 2])
    subtitle = subtitles(root, notes)
    videos = VideoDirs(root, video_dirs)
    wanted = _test_names(root, notes) if dataset == 'OVMERDPlus' else None
    rows, by_name = [], {}
    for line, cells in table:
        name = cells['name'].strip()
        split = 'test' if test is None or line in test else 'train'
        where = f'{label_name} line {line}'
        if not name:
            skips.append(Skip(f'{label_name}:{line}', f'malformed_row: {where}: empty name'))
            continue
        gold = cells[column] if column == 'openset' else cells[column].strip()
        if column != 'openset' and not gold:
            skips.append(Skip(name, f'malformed_row: {where}: empty {column}'))
            continue
        row = BenchRow(name=name, gold=gold, split=split, where=where, subtitle=subtitle.get(name, ''))
        by_name.setdefault(name, row)
        rows.append(row)
    if wanted is not None:             # OV-MERD+: the test names are subtitle_eng.csv's
        rows = []
        for name in wanted:
            if name in by_name:
                rows.append(by_name[name])
            else:
                skips.append(Skip(name, f'no_label: subtitle_eng.csv lists {name!r} but ovlabel.csv has no row for it'))
    out = []
    for row in rows:
        if row.split not in splits:
            continue
        if not unsafe_name_reason(row.name):
            row.video = videos.find(row.name)
            row.missing = '' if row.video else videos.where(row.name)
            row.audio_file, row.faces_npy = audio_wav(root, row.name), openface_npy(root, row.name)
        out.append(row)
    return out
