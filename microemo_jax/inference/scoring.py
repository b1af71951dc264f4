"""A prepared split -> per-sample labels and the OV / emotion-wheel scores: the core of ``evaluate`` (and of the
demo report and the web page's held-out clips).

One generation per video: a clip prepared with both a description and OV labels (records ``NAME`` and
``NAME#ov``) is asked the chosen question once, and its gold labels are the clip's OV labels. The answer's
labels come from ``metrics.extract_labels``. A majority-label baseline is scored the same way. Multi-process
runs give each process every P-th video; process 0 gathers the parts (OUT/parts/) and scores.
"""
from __future__ import annotations

import csv
import json
import os
import time
from collections import Counter

import jax
from tqdm import tqdm

from microemo_jax import params as params_lib
from microemo_jax.data import pipeline
from microemo_jax.data.raw.splits import video_of  # records NAME and NAME#ov share the video NAME
from microemo_jax.data.records import tfds_builder
from microemo_jax.inference.explainer import Explainer
from microemo_jax.inference.settings import GenerationSettings
from microemo_jax.metrics import extract_labels, load_synonyms, load_wheel, score_ov, score_wheel
from microemo_jax.metrics.per_sample import write_per_sample
from microemo_jax.params import ParamsFolderError, find_prepare_report
from microemo_jax.training import distributed

QUESTIONS = ('description', 'ov')


class EvaluateError(RuntimeError):
    """The evaluation cannot run; the message says why."""


def _text(x) -> str:
    return x.decode('utf-8') if isinstance(x, bytes) else str(x)


def gold_labels(openset_field) -> list[str] | None:
    text = _text(openset_field)
    if not text:
        return None
    labels = json.loads(text)
    return [str(x) for x in labels]


def plan_videos(source, question: str) -> list[dict]:
    """One entry per video of a split: the record index to prompt with and the clip's gold labels."""
    videos: dict[str, dict] = {}
    for index in range(len(source)):
        rec = source[index]
        name = _text(rec['name'])
        video = video_of(name)
        entry = videos.setdefault(video, {'name': video, 'index': None, 'kind': None, 'gold': None})
        kind = 'ov' if name.endswith('#ov') else 'description'
        if entry['index'] is None or (kind == question and entry['kind'] != question):
            entry['index'], entry['kind'] = index, kind
        labels = gold_labels(rec['openset'])
        if labels is not None:
            entry['gold'] = labels
    return [videos[k] for k in sorted(videos)]


def majority_label(records) -> str | None:
    """The most frequent gold label over the videos of ``records`` (ties: alphabetical), or None without labels."""
    counts: Counter = Counter()
    seen = set()
    for index in range(len(records)):
        rec = records[index]
        video = video_of(_text(rec['name']))
        labels = gold_labels(rec['openset'])
        if labels is None or video in seen:
            continue
        seen.add(video)
        counts.update(label.strip().lower() for label in labels)
    if not counts:
        return None
    best = max(counts.values())
    return sorted(k for k, v in counts.items() if v == best)[0]


def indexed_records(data: str, split: str) -> list[dict] | None:
    """The text fields of a split's records from prepare's work index (JSON sidecars: no frame or audio is
    read), or None when only the TFDS folder is at hand (then the split itself is read)."""
    try:
        out = os.path.dirname(find_prepare_report(data))
    except ParamsFolderError:
        return None
    splits_csv, work = os.path.join(out, 'splits.csv'), os.path.join(out, 'work')
    if not (os.path.isfile(splits_csv) and os.path.isdir(work)):
        return None
    with open(splits_csv, newline='', encoding='utf-8') as f:
        videos = {row['name'] for row in csv.DictReader(f) if row['split'] == split}
    return [r for shard in tfds_builder.read_index(work) for r in shard.records if video_of(r['name']) in videos]


def score(gold: dict, pred: dict, synonyms, wheel) -> dict:
    out = dict(score_ov(gold, pred, synonyms))
    if wheel is not None:
        out.update(score_wheel(gold, pred, wheel))
    return out


def _write_part(path: str, rows: list[dict]) -> None:
    tmp = path + '.tmp'
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


def evaluate(params_dir: str, data: str, split: str, out: str, *, synonyms=None, wheel=None, batch_size: int = 8,
             question: str = 'description', limit: int = 0, **generation) -> dict:
    """Scores one split into ``out`` (see ``python -m microemo_jax.evaluate``); ``generation``: fields of
    ``GenerationSettings``. Returns the summary (``{}`` on processes other than 0)."""
    t0 = time.time()
    if question not in QUESTIONS:
        raise EvaluateError(f"--question must be one of {QUESTIONS}, got {question!r}")
    if batch_size < 1:
        raise EvaluateError(f"--batch-size must be >= 1, got {batch_size}")
    synonym_table = load_synonyms(synonyms)
    wheel_table = load_wheel(wheel) if wheel else None
    folder = params_lib.load(params_dir)
    available = tfds_builder.splits(data)
    if split not in available:
        raise EvaluateError(f"{data}: the prepared dataset has no {split!r} split (it has {available})")
    source = pipeline.open_split(data, split)
    videos = plan_videos(source, question)
    if limit:
        videos = videos[:limit]
    baseline_split = 'train' if 'train' in available and split != 'train' else split
    majority = majority_label(indexed_records(data, baseline_split) or pipeline.open_split(data, baseline_split))

    settings = GenerationSettings(**generation)
    explainer = Explainer(folder, settings, batch_size=batch_size)
    pi, pc = jax.process_index(), jax.process_count()
    mine = videos[pi::pc]
    rows = []
    with tqdm(total=len(mine), desc=f'evaluate {split}', unit='clip', disable=not mine) as bar:
        for i in range(0, len(mine), batch_size):
            chunk = mine[i:i + batch_size]
            texts = explainer.explain([source[v['index']] for v in chunk], progress=bar)
            for v, text in zip(chunk, texts):
                rows.append({'name': v['name'], 'gold': v['gold'], 'predicted': extract_labels(text),
                             'explanation': text, 'prompt': v['kind']})
    parts = os.path.join(out, 'parts')
    os.makedirs(parts, exist_ok=True)  # also creates OUT
    _write_part(os.path.join(parts, f'part-{pi:05d}.jsonl'), rows)
    if pc > 1:
        distributed.barrier('microemo: evaluate parts written')
        if pi:
            return {}
        rows = _read_parts(parts, pc)

    gold = {r['name']: r['gold'] for r in rows if r['gold'] is not None}
    if not gold:
        raise EvaluateError(f"{data} split {split!r} has no clip with OV labels (openset): nothing to score")
    pred = {r['name']: r['predicted'] for r in rows}
    summary = {
        'split': split, 'data': os.path.abspath(data), 'params': folder.path, 'question': question,
        'n_videos': len(rows), 'scores': score(gold, pred, synonym_table, wheel_table),
        'baseline': None, 'generation': {**settings.as_dict(), 'batch_size': batch_size},
        'synonyms': synonyms or 'bundled', 'wheel': wheel, 'seconds': round(time.time() - t0, 1),
    }
    if majority is not None:
        summary['baseline'] = {'kind': 'majority label', 'label': majority, 'from_split': baseline_split,
                               'scores': score(gold, {n: [majority] for n in gold}, synonym_table, wheel_table)}
    write_per_sample(os.path.join(out, 'per_sample.csv'), rows)
    with open(os.path.join(out, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2, ensure_ascii=False)
    return summary
