"""The nine MER-UniBench datasets as ``prepare`` sources: their test sets, asked the benchmark's one question.

``prepare --source meld|iemocap|cmumosi|cmumosei|sims|simsv2|mer2023|mer2024|ovmerdplus --raw DIR`` reads
the dataset's own published files (``meld.py``, ``iemocap.py``, ``mmsa.py``, ``mer.py``) or, where DIR holds
none of those, AffectGPT's processed folder with its label ``.npz`` (``processed.py``). What it prepares:

* the benchmark's test set only (the benchmark is zero-shot; every record lands in the ``test`` split),
  each clip under the benchmark's own name (``test_dia3_utt1``, ``Ses05F_impro01_F000``, ...), so that
  AffectGPT's published predictions line up name for name;
* every clip asked the same question, ``data.bench_question``: ``benchmark`` (default) is the benchmark's
  "Please recognize all possible emotional states of the character." (``metrics.protocol``, verbatim);
  ``description`` asks for the EMER explanation instead, whose labels the extractor reads out (not the
  benchmark's protocol: the table says which question was asked);
* ``OUT/bench_gold.csv``: the gold of every test row the label files hold, in the metrics CLI's format
  (``name,emo`` | ``name,val`` | ``name,openset``). A row whose clip cannot be prepared (video missing or
  unreadable) stays in the gold and is scored as a miss, so the score is always over the whole test set;
* a ``benchmark`` section in ``prepare_report.json``: the dataset, the files read, the test rows found
  against the official size (a different count is printed as a warning, never hidden), the clips prepared.

Rows of the label files that cannot be read, duplicate names, unsafe names and missing videos are
``Skip``s with their reason, as in every other layout.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import sys

from microemo_jax.data import prompt
from microemo_jax.data.raw import iemocap, meld, mer, mmsa, processed
from microemo_jax.data.raw.bench_files import BenchRow
from microemo_jax.data.raw.files import Skip, link_problem, unsafe_name_reason
from microemo_jax.data.raw.sources import RawClip, side_file_problem
from microemo_jax.metrics.benchmark import DATASETS, TEST_SIZES
from microemo_jax.metrics.labels import split_list_string
from microemo_jax.metrics.protocol import BENCHMARK_QUESTION

BENCH_SOURCES = {'mer2023': 'MER2023', 'mer2024': 'MER2024', 'meld': 'MELD', 'iemocap': 'IEMOCAPFour',
                 'cmumosi': 'CMUMOSI', 'cmumosei': 'CMUMOSEI', 'sims': 'SIMS', 'simsv2': 'SIMSv2',
                 'ovmerdplus': 'OVMERDPlus'}
"""``--source`` -> the dataset's official name (``metrics.benchmark.DATASETS``)."""
QUESTIONS = {'benchmark': BENCHMARK_QUESTION, 'description': prompt.DESCRIPTION_QUESTION}
GOLD_FILE = 'bench_gold.csv'
GOLD_COLUMN = {'hit_rate': 'emo', 'waf': 'val', 'fs': 'openset'}


@dataclasses.dataclass
class BenchRead:
    dataset: str
    layout: str                      # which files were read
    question: str                    # 'benchmark' | 'description'
    clips: list[RawClip]
    skips: list[Skip]
    gold: dict                       # every test row: name -> emotion word | valence | OV label cell
    notes: list[str]


def _own_files(kind: str, dataset: str, raw: str, skips, notes):
    """(rows, description) from the dataset's own files, or None when they are not in ``raw``."""
    if kind == 'meld' and meld.present(raw):
        return meld.read(raw, skips, notes), "MELD's test_sent_emo.csv and dia{D}_utt{U}.mp4 clips"
    if kind == 'iemocap' and iemocap.present(raw):
        return iemocap.read(raw, skips, notes), 'IEMOCAP Session1..5/dialog/EmoEvaluation (Session 5)'
    if dataset in mmsa.LABEL_FILES and mmsa.present(raw, dataset):
        found = mmsa.label_file(raw, dataset)
        return mmsa.read(raw, dataset, skips, notes), (f'{os.path.basename(found)} (mode test)' if found else
                                                       'metadata/sentiment/label_M.csv and metadata/test_index.csv')
    if dataset in mer.LABELS and mer.present(raw, dataset):
        return mer.read(raw, dataset, skips, notes), mer.LABELS[dataset][0]
    return None


def question_kind(cfg_data) -> str:
    kind = cfg_data.get('bench_question', 'benchmark')
    if kind not in QUESTIONS:
        raise ValueError(f"data.bench_question={kind!r}: choose one of {', '.join(QUESTIONS)}")
    return kind


def _openset(cell) -> list[str]:
    """OV labels as the official dataset class hands them over: split, an empty set -> neutral."""
    return [w.lower().strip() for w in split_list_string(cell)] or ['neutral']


def _clip(row: BenchRow, metric: str, ask: str) -> RawClip:
    openset = [str(row.gold).strip().lower()] if metric == 'hit_rate' else _openset(row.gold) if metric == 'fs' \
        else None
    return RawClip(name=row.name, video=row.video, subtitle=row.subtitle, answer_kind='ov' if openset else None,
                   openset=openset, emotion=str(row.gold) if metric == 'hit_rate' else None,
                   audio_file=row.audio_file, faces_npy=row.faces_npy, ask=ask, split='test', segment=row.segment,
                   crop=row.crop)


def read_bench(kind: str, raw: str, *, question: str = 'benchmark') -> BenchRead:
    """The test set of benchmark source ``kind`` in ``raw``: clips to prepare, skips, and the gold of every row."""
    if kind not in BENCH_SOURCES:
        raise ValueError(f"unknown benchmark source {kind!r}; expected one of {', '.join(BENCH_SOURCES)}")
    if question not in QUESTIONS:
        raise ValueError(f"benchmark question {question!r}: choose one of {', '.join(QUESTIONS)}")
    if not os.path.isdir(raw):
        raise FileNotFoundError(f"raw directory {raw!r} does not exist")
    dataset, metric = BENCH_SOURCES[kind], DATASETS[BENCH_SOURCES[kind]]
    skips, notes = [], []
    own = _own_files(kind, dataset, raw, skips, notes)
    if own is not None:
        rows, layout = own
    elif processed.present(raw, dataset):
        rows = processed.read(raw, dataset, skips, notes)
        layout = f"AffectGPT's processed {processed.LABEL_NPZ[dataset]}"
    else:
        hint = f" or AffectGPT's processed {processed.LABEL_NPZ[dataset]}" if dataset in processed.LABEL_NPZ else ''
        raise FileNotFoundError(f"{raw}: found neither {dataset}'s own label files{hint}; see docs/data.md "
                                f"(benchmark sources) for the files each source reads")
    gold, clips = {}, []
    for row in rows:
        if row.split != 'test':
            continue
        if row.name in gold:
            skips.append(Skip(row.name, f'duplicate_name: {row.where} repeats {row.name!r}; the first row is used'))
            continue
        gold[row.name] = row.gold
        why = unsafe_name_reason(row.name)
        if why:
            skips.append(Skip(row.name, f'unsafe_name: {row.where}: name {row.name!r} {why}'))
        elif row.video is None:
            skips.append(Skip(row.name, f'video_missing: {row.missing} ({row.where})'))
        elif link_problem(row.video):
            skips.append(Skip(row.name, f'bad_link: video file {row.video} {link_problem(row.video)}'))
        else:
            clip = _clip(row, metric, QUESTIONS[question])
            why = side_file_problem(clip, raw)
            if why:
                skips.append(Skip(row.name, f'bad_side_file: {why}'))
            else:
                clips.append(clip)
    return BenchRead(dataset=dataset, layout=layout, question=question, clips=clips, skips=skips, gold=gold,
                     notes=notes)


def write_gold(out: str, read: BenchRead) -> str:
    """``OUT/bench_gold.csv``, every test row, in the metrics CLI's ``--gold`` format."""
    column = GOLD_COLUMN[DATASETS[read.dataset]]
    path = os.path.join(out, GOLD_FILE)
    with open(path, 'w', encoding='utf-8', newline='') as f:
        w = csv.writer(f)
        w.writerow(['name', column])
        for name, value in read.gold.items():
            w.writerow([name, repr(float(value)) if column == 'val' else value])
    return path


def account(read: BenchRead, written: list[str]) -> dict:
    """The report's ``benchmark`` section; warns on stderr when the test set is not the official one."""
    expected, found = TEST_SIZES[read.dataset], len(read.gold)
    prepared = len({n for n in written if n in read.gold})
    warnings = []
    if found != expected:
        warnings.append(f"{read.dataset}: the label files give {found} test clips; the benchmark's test set has "
                        f"{expected}: scores over this set are not the published table's")
    if prepared < found:
        warnings.append(f"{read.dataset}: {found - prepared} of {found} test clips were not prepared (skipped.jsonl "
                        f"says why); they stay in {GOLD_FILE} and score as misses")
    for line in warnings:
        print(f'warning: {line}', file=sys.stderr, flush=True)
    return {'dataset': read.dataset, 'metric': DATASETS[read.dataset], 'layout': read.layout,
            'question_kind': read.question, 'question': QUESTIONS[read.question], 'gold_file': GOLD_FILE,
            'test_clips': found, 'expected_test_clips': expected, 'prepared': prepared,
            'not_prepared': found - prepared, 'notes': read.notes, 'warnings': warnings}
