"""A prepared split -> per-sample labels and the OV / emotion-wheel scores: the core of ``evaluate`` (and of the
demo report and the web page's held-out clips).

One generation per video: a clip prepared with both a description and OV labels (records ``NAME`` and
``NAME#ov``) is asked the chosen question once, and its gold labels are the clip's OV labels. The answer's
labels come from ``metrics.extract_labels``. A majority-label baseline is scored the same way. Multi-process
runs give each process every P-th video; process 0 gathers the parts (OUT/parts/) and scores.

Every score gets a bootstrap interval over clips (``metrics.intervals``); ``groups`` (a ``name,group`` CSV,
``metrics.groups``) scores each group apart; the temporal grounding (``metrics.grounding``) compares the times
the answer states with the gold explanation's, and with those of a constant answer, the training split's median
gold time (``summary['time_baseline']``, each block's ``baseline_grounding``). The gold explanation is the
``answer`` text field of the clip's ``NAME`` record: prepare stores it there whole (even when the prompt had to
cut the answer's tokens), so it needs neither the tokenizer nor the raw corpus, which may have moved.
``shuffle_faces`` gives each clip another clip's face tubelets (``data.face_shuffle``), for the ablation.
"""
from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections import Counter

import jax
from tqdm import tqdm

from microemo_jax import params as params_lib
from microemo_jax.csv_cells import unescape_cell
from microemo_jax.data import pipeline
from microemo_jax.data.face_shuffle import face_donors, with_faces_of
from microemo_jax.data.prepared import NotPrepared, dataset_tokenizers, find_prepare_report
from microemo_jax.data.raw.splits import video_of  # records NAME and NAME#ov share the video NAME
from microemo_jax.data.records import tfds_builder
from microemo_jax.data.records.record import text_field
from microemo_jax.data.tokenizer_identity import check_same
from microemo_jax.inference.explainer import Explainer
from microemo_jax.inference.settings import GenerationSettings
from microemo_jax.metrics import extract_labels, load_synonyms, load_wheel
from microemo_jax.metrics.grounding import median_time, stated_times
from microemo_jax.metrics.groups import read_groups
from microemo_jax.metrics.intervals import Bootstrap
from microemo_jax.metrics.per_sample import write_per_sample
from microemo_jax.metrics.subsets import group_blocks, subset_block
from microemo_jax.safe_paths import inside
from microemo_jax.table_keys import checked_header
from microemo_jax.training import distributed

QUESTIONS = ('description', 'ov')


class EvaluateError(RuntimeError):
    """The evaluation cannot run; the message says why."""


def gold_labels(openset_field) -> list[str] | None:
    text = text_field(openset_field)
    if not text:
        return None
    labels = json.loads(text)
    return [str(x) for x in labels]


def plan_videos(source, question: str) -> list[dict]:
    """One entry per video of a split: the record index to prompt with, the clip's gold labels and its gold
    explanation (``gold_text``: the answer of its description record ``NAME``, '' without one)."""
    videos: dict[str, dict] = {}
    for index in range(len(source)):
        rec = source[index]
        name = text_field(rec['name'])
        video = video_of(name)
        entry = videos.setdefault(video, {'name': video, 'index': None, 'kind': None, 'gold': None, 'gold_text': ''})
        kind = 'ov' if name.endswith('#ov') else 'description'
        if entry['index'] is None or (kind == question and entry['kind'] != question):
            entry['index'], entry['kind'] = index, kind
        labels = gold_labels(rec['openset'])
        if labels is not None:
            entry['gold'] = labels
        if kind == 'description' and 'answer' in rec:
            entry['gold_text'] = text_field(rec['answer'])
    return [videos[k] for k in sorted(videos)]


def majority_label(records) -> str | None:
    """The most frequent gold label over the videos of ``records`` (ties: alphabetical), or None without labels."""
    counts: Counter = Counter()
    seen = set()
    for index in range(len(records)):
        rec = records[index]
        video = video_of(text_field(rec['name']))
        labels = gold_labels(rec['openset'])
        if labels is None or video in seen:
            continue
        seen.add(video)
        counts.update(label.strip().lower() for label in labels)
    if not counts:
        return None
    best = max(counts.values())
    return sorted(k for k, v in counts.items() if v == best)[0]


def median_gold_time(records) -> float | None:
    """The median moment the gold explanations of ``records`` state (each video's description record once), or
    None when none states one: the constant answer of the time baseline (``metrics.grounding.median_time``)."""
    answers = {}
    for index in range(len(records)):
        rec = records[index]
        name = text_field(rec['name'])
        if not name.endswith('#ov') and 'answer' in rec:
            answers.setdefault(video_of(name), text_field(rec['answer']))
    return median_time(answers.values())


def indexed_records(data: str, split: str) -> list[dict] | None:
    """The text fields of a split's records from prepare's work index (JSON sidecars: no frame or audio is
    read), or None when only the TFDS folder is at hand (then the split itself is read)."""
    try:
        out = os.path.dirname(find_prepare_report(data))
    except NotPrepared:
        return None
    splits_csv, work = os.path.join(out, 'splits.csv'), os.path.join(out, 'work')
    if not (os.path.isfile(splits_csv) and os.path.isdir(work)):
        return None
    with open(splits_csv, newline='', encoding='utf-8') as f:
        reader = csv.DictReader(f)
        checked_header(splits_csv, reader.fieldnames or [])
        videos = {unescape_cell(row['name']) for row in reader if row['split'] == split}
    return [r for shard in tfds_builder.read_index(work) for r in shard.records if video_of(r['name']) in videos]


def check_tokenizers(folder, data: str) -> dict | None:
    """The dataset's tokenizer identity, refused (TokenizerMismatch) unless it is the parameter folder's: the
    prepared prompts' token ids are only meaningful to the weights that learned them. A dataset whose report is
    gone cannot be checked: said on stderr."""
    try:
        ids = dataset_tokenizers(data)
    except NotPrepared as e:
        print(f"warning: the tokenizer of {data} cannot be checked against {folder.path} ({e})", file=sys.stderr,
              flush=True)
        return None
    check_same(folder.tokenizers, ids, f"the parameter folder {folder.path}", f"the dataset {data}",
               hint=f"evaluate data prepared with this folder's tokenizers (prepare --tokenizer "
                    f"{os.path.join(folder.path, 'tokenizers', 'llm')} --qformer-tokenizer "
                    f"{os.path.join(folder.path, 'tokenizers', 'qformer')})")
    return ids


def _write_part(path: str, rows: list[dict]) -> None:
    tmp = inside(os.path.dirname(path), os.path.basename(path) + '.tmp')
    with open(tmp, 'w') as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + '\n')
    os.replace(tmp, path)


def _read_parts(parts_dir: str, count: int) -> list[dict]:
    rows = []
    for i in range(count):
        with open(os.path.join(parts_dir, f'part-{i:05d}.jsonl')) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return sorted(rows, key=lambda r: r['name'])


def _records(source, chunk: list[dict], donors: dict[str, int] | None) -> list[dict]:
    """The prompt records of ``chunk``; with ``donors`` (video -> record index), each with its donor's faces."""
    if donors is None:
        return [source[v['index']] for v in chunk]
    return [with_faces_of(source[v['index']], source[donors[v['name']]]) for v in chunk]


def evaluate(params_dir: str, data: str, split: str, out: str, *, synonyms=None, wheel=None, batch_size: int = 8,
             question: str = 'description', limit: int | None = None, groups: str | None = None,
             shuffle_faces: int | None = None, bootstrap: Bootstrap = Bootstrap(), **generation) -> dict:
    """Scores one split into out (see python -m microemo_jax.evaluate); generation: fields of
    GenerationSettings; limit: score only the first N videos (None: all; the summary's subset says how
    many of how many were scored); groups: a name,group CSV (metrics.groups); shuffle_faces: a seed
    to give each clip another clip's faces. Returns the summary ({} on processes other than 0)."""
    t0 = time.time()
    if question not in QUESTIONS:
        raise EvaluateError(f"--question must be one of {QUESTIONS}, got {question!r}")
    if batch_size < 1:
        raise EvaluateError(f"--batch-size must be >= 1, got {batch_size}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise EvaluateError(f"--limit must be a whole number >= 1 (leave it out to score every video), got {limit!r}")
    synonym_table = load_synonyms(synonyms)
    wheel_table = load_wheel(wheel) if wheel else None
    group_table = read_groups(groups) if groups else None   # a bad file fails before any generation
    folder = params_lib.load(params_dir)
    data_tokenizers = check_tokenizers(folder, data)
    available = tfds_builder.splits(data)
    if split not in available:
        raise EvaluateError(f"{data}: the prepared dataset has no {split!r} split (it has {available})")
    source = pipeline.open_split(data, split)
    videos = plan_videos(source, question)
    in_split = len(videos)
    if limit is not None:
        videos = videos[:limit]
    donors = None
    if shuffle_faces is not None:
        if len(videos) < 2:
            raise EvaluateError(f"--shuffle-faces needs at least 2 videos to swap faces between; {split!r} has "
                                f"{len(videos)}")
        donors = {v['name']: videos[d]['index'] for v, d in zip(videos, face_donors(len(videos), shuffle_faces))}
    baseline_split = 'train' if 'train' in available and split != 'train' else split
    baseline_records = indexed_records(data, baseline_split) or pipeline.open_split(data, baseline_split)
    majority, median_s = majority_label(baseline_records), median_gold_time(baseline_records)

    settings = GenerationSettings(**generation)
    explainer = Explainer(folder, settings, batch_size=batch_size)
    pi, pc = jax.process_index(), jax.process_count()
    mine = videos[pi::pc]
    rows = []
    with tqdm(total=len(mine), desc=f'evaluate {split}', unit='clip', disable=not mine) as bar:
        for i in range(0, len(mine), batch_size):
            chunk = mine[i:i + batch_size]
            texts = explainer.explain(_records(source, chunk, donors), progress=bar)
            for v, text in zip(chunk, texts):
                rows.append({'name': v['name'], 'gold': v['gold'], 'predicted': extract_labels(text),
                             'explanation': text, 'prompt': v['kind'], 'gold_text': v['gold_text']})
    os.makedirs(out, exist_ok=True)
    parts = inside(out, 'parts')        # every path under --out through safe_paths: a planted link is refused
    os.makedirs(parts, exist_ok=True)
    _write_part(inside(parts, f'part-{pi:05d}.jsonl'), rows)
    if pc > 1:
        distributed.barrier('microemo: evaluate parts written')
        if pi:
            return {}
        rows = _read_parts(parts, pc)

    gold = {r['name']: r['gold'] for r in rows if r['gold'] is not None}
    if not gold:
        raise EvaluateError(f"{data} split {split!r} has no clip with OV labels (openset): nothing to score")
    kw = dict(synonyms=synonym_table, wheel=wheel_table, majority=majority, bootstrap=bootstrap, median_s=median_s)
    whole = subset_block(rows, **kw)
    if whole['scores'] is None:
        raise EvaluateError(f"{data} split {split!r}: every clip's OV label list is empty: nothing to score")
    summary = {
        'split': split, 'data': os.path.abspath(data), 'params': folder.path, 'question': question,
        'n_videos': len(rows), 'n_videos_in_split': in_split,
        'subset': None if len(videos) == in_split else {'limit': limit, 'scored': len(videos), 'of': in_split},
        'scores': whole['scores'], 'baseline': None,
        'intervals': {**bootstrap.describe(), **whole['intervals']}, 'grounding': whole['grounding'],
        'groups': group_blocks(rows, group_table, **kw) if group_table is not None else None,
        'faces': {'shuffled': shuffle_faces is not None, 'seed': shuffle_faces},
        'generation': {**settings.as_dict(), 'batch_size': batch_size},
        'synonyms': synonyms or 'bundled', 'wheel': wheel, 'seconds': round(time.time() - t0, 1),
        'tokenizers': folder.tokenizers or data_tokenizers,
    }
    if majority is not None:
        summary['baseline'] = {'kind': 'majority label', 'label': majority, 'from_split': baseline_split,
                               'scores': whole['baseline']}
    if median_s is not None:
        summary['time_baseline'] = {'kind': 'median gold time', 'seconds': median_s, 'from_split': baseline_split,
                                    'grounding': whole['baseline_grounding']}
    for r in rows:
        r['gold_times'] = [t.seconds for t in stated_times(r['gold_text'])]
        r['stated_times'] = [t.seconds for t in stated_times(r['explanation'])]
    write_per_sample(inside(out, 'per_sample.csv'), rows)
    with open(inside(out, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2, ensure_ascii=False)
    return summary
