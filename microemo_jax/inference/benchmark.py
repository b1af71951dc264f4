"""MER-UniBench over a model: every prepared benchmark dataset under a root, scored exactly, in one table.

    python -m microemo_jax.evaluate --bench merunibench --params DIR [--params DIR2 ... --select best] \
        --data-root ROOT --out OUT [--wheel emotion_wheel/] [--extractor lexicon|cache|llm:PATH]

``ROOT/<any name>/`` are ``prepare --source meld|iemocap|...`` output folders (their ``prepare_report.json``
has a ``benchmark`` section naming the dataset; ``bench_gold.csv`` holds the gold of the whole test set).
For each checkpoint and dataset the model answers the question the records were prepared with (the
benchmark's by default), the extractor turns each answer into labels and a sentiment, and the metrics of
``metrics.bench_cli`` (the ``--dataset`` CLI, exact to AffectGPT's code) score them against the gold; a gold
clip without a prediction scores as a miss. ``OUT/<checkpoint>/<DATASET>/`` keeps ``predictions.csv``
(``name,openset,sentiment,explanation``: rescorable with ``python -m microemo_jax.metrics --dataset``) and
``score.json``; a dataset whose ``score.json`` was made from the same inputs and settings is not redone
(resume). ``OUT/table.{md,json,png}`` is the table (``bench_table``). Several processes (``jax.distributed``)
each answer every P-th clip and process 0 gathers the parts and scores, as ``evaluate`` does.

``--extractor cache --cache AFFECTGPT_OUTPUT`` takes no model: the labels are AffectGPT's published caches
(``results-<dataset>/<run>/checkpoint_*-openset.npz``), one checkpoint per training epoch (``bench_cache``).
``--extractor llm:PATH`` reads the answers with an instruct checkpoint (``inference/llm_extractor.py``); each
process extracts the labels of the clips it answered, and the replies that held no list are counted in each
``score.json`` and under the table.
"""
from __future__ import annotations

import argparse
import csv
import json
import os

import jax
from tqdm import tqdm

from microemo_jax import params as params_lib
from microemo_jax.data import pipeline
from microemo_jax.data.records.record import text_field
from microemo_jax.inference import bench_cache, bench_table, llm_extractor  # noqa: F401  (registers llm:PATH)
from microemo_jax.inference.bench_data import BenchError, check_compatible, checkpoint_labels, digest, find_datasets
from microemo_jax.inference.explainer import Explainer
from microemo_jax.inference.settings import GenerationSettings
from microemo_jax.metrics.bench_cli import run_benchmark as score_dataset
from microemo_jax.metrics.benchmark import DATASETS
from microemo_jax.metrics.extractors import make_extractor
from microemo_jax.training import distributed

BENCHMARKS = ('merunibench',)
SELECT = ('single', 'best')


def _answers(explainer: Explainer, ex, found: dict, where: str, label: str, dataset: str) -> list[dict] | None:
    """Every process answers every P-th clip and extracts its labels; process 0 returns all rows (others None)."""
    if not found['report'].get('written'):            # no clip could be prepared: every gold clip is a miss
        return None if jax.process_index() else []
    source = pipeline.open_split(found['folder'], 'test')
    pi, pc = jax.process_index(), jax.process_count()
    mine = list(range(pi, len(source), pc))
    rows = []
    with tqdm(total=len(mine), desc=f'{label} {dataset}', unit='clip', disable=not mine) as bar:
        for i in range(0, len(mine), explainer.batch_size):
            records = [source[j] for j in mine[i:i + explainer.batch_size]]
            texts = explainer.explain(records, progress=bar)
            rows += [{'name': text_field(r['name']), 'explanation': t} for r, t in zip(records, texts)]
    with tqdm(total=len(rows), desc=f'{label} {dataset} labels ({ex.name})', unit='clip', disable=not rows) as bar:
        for i in range(0, len(rows), ex.batch_size):
            chunk = rows[i:i + ex.batch_size]
            for r, e in zip(chunk, ex.extract_batch([r['name'] for r in chunk], [r['explanation'] for r in chunk])):
                r['openset'], r['sentiment'] = '[' + ', '.join(e.labels) + ']', e.sentiment
                if e.answer is not None:                     # an LLM's reply: whether it held a list
                    r['unread'] = e.unread
            bar.update(len(chunk))
    parts = os.path.join(where, 'parts')
    os.makedirs(parts, exist_ok=True)
    with open(os.path.join(parts, f'part-{pi:05d}.jsonl'), 'w', encoding='utf-8') as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + '\n' for r in rows)
    if pc > 1:
        distributed.barrier(f'microemo: bench {label} {dataset} answered')
        if pi:
            return None
        rows = []
        for p in range(pc):
            with open(os.path.join(parts, f'part-{p:05d}.jsonl'), encoding='utf-8') as f:
                rows += [json.loads(line) for line in f if line.strip()]
    return sorted(rows, key=lambda r: r['name'])


def write_predictions(path: str, rows: list[dict]) -> None:
    with open(path, 'w', encoding='utf-8', newline='') as f:
        w = csv.writer(f)
        w.writerow(['name', 'openset', 'sentiment', 'explanation'])
        for r in rows:
            w.writerow([r['name'], r['openset'], r['sentiment'], r.get('explanation', '')])


def _score(found: dict, dataset: str, where: str, rows: list[dict], wheel, extractor: dict, key: dict) -> dict:
    pred = os.path.join(where, 'predictions.csv')
    write_predictions(pred, rows)
    args = argparse.Namespace(dataset=dataset, gold=found['gold'], pred=pred, wheel=wheel, sentiment=None,
                              synonyms=None)
    score = score_dataset(args)
    score['extractor'] = extractor
    score['resume_key'] = key
    with open(os.path.join(where, 'score.json'), 'w', encoding='utf-8') as f:
        json.dump(score, f, indent=2, ensure_ascii=False)
    return score


def _done(where: str, key: dict) -> dict | None:
    path = os.path.join(where, 'score.json')
    if not os.path.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        score = json.load(f)
    return score if score.get('resume_key') == key else None


def _question(found: dict) -> dict:
    kinds = {d: f['report']['benchmark'].get('question_kind', 'benchmark') for d, f in found.items()}
    texts = {f['report']['benchmark'].get('question', '') for f in found.values()}
    kind = next(iter(set(kinds.values()))) if len(set(kinds.values())) == 1 else f'mixed: {kinds}'
    return {'kind': kind, 'text': texts.pop() if len(texts) == 1 else 'several (see kind)'}


def run_benchmark(params: list[str], data_root: str, out: str, *, extractor: str = 'lexicon',
                  select: str = 'single', wheel: str | None = None, cache: str | None = None,
                  checkpoint: str | None = None, datasets: list[str] | None = None, batch_size: int = 8,
                  **generation) -> dict:
    """Scores every prepared dataset under ``data_root`` for each checkpoint and writes the table into ``out``.
    Returns the table (``{}`` on processes other than 0)."""
    if select not in SELECT:
        raise BenchError(f"--select must be one of {SELECT}, got {select!r}")
    if batch_size < 1:
        raise BenchError(f"--batch-size must be >= 1, got {batch_size}")
    found = find_datasets(data_root, datasets)
    needs_wheel = sorted(d for d in found if DATASETS[d] != 'waf')
    if needs_wheel and not wheel:
        raise BenchError(f"{', '.join(needs_wheel)} are scored through the emotion wheels: give --wheel, AffectGPT's "
                         f"emotion_wheel/ folder")
    if extractor == 'cache':
        if params:
            raise BenchError("--extractor cache scores AffectGPT's published caches; it takes --cache, not --params")
        sources = bench_cache.checkpoints(cache, list(found), select=select, checkpoint=checkpoint)
        if jax.process_index():
            return {}                                     # no model: process 0 reads the caches alone
    else:
        if cache:
            raise BenchError("--cache goes with --extractor cache")
        if not params:
            raise BenchError("give --params (a parameter folder written by train)")
        if len(params) > 1 and select != 'best':
            raise BenchError(f"{len(params)} --params given: the default is one checkpoint; add --select best to "
                             f"score each and report the papers' per-dataset best beside them")
        ex = make_extractor(extractor)                     # llm:PATH checks its folder here, loads on first use
        sources = dict(zip(checkpoint_labels(params), params))
    settings = GenerationSettings(**generation)
    results: dict[str, dict] = {}
    info = {'labels': 'cache', 'sentiment': 'cache'} if extractor == 'cache' else ex.describe()
    for label, source in sources.items():
        results[label], folder, explainer = {}, None, None
        for dataset, f in found.items():
            where = os.path.join(out, label, dataset)
            os.makedirs(where, exist_ok=True)
            if extractor == 'cache':
                if dataset not in source:
                    continue
                key = {'cache': bench_cache.identity(source[dataset]), 'gold': digest(f['gold']), 'wheel': wheel}
                done = _done(where, key)
                rows = None if done else bench_cache.rows(source[dataset])
                ext = {'labels': 'cache', 'sentiment': bench_cache.sentiment_source(source[dataset])}
            else:
                key = {'params': os.path.abspath(source), 'weights': digest(os.path.join(source, 'params')),
                       'records': digest(os.path.join(f['folder'], 'prepare_report.json')), 'gold': digest(f['gold']),
                       'extractor': ex.identity(), 'generation': settings.as_dict(), 'wheel': wheel}
                done = _done(where, key)
                rows = None
                if not done:
                    if folder is None:
                        folder = params_lib.load(source)
                        explainer = Explainer(folder, settings, batch_size=batch_size)
                    check_compatible(folder, f)
                    rows = _answers(explainer, ex, f, where, label, dataset)
                ext = info
                if rows and any('unread' in r for r in rows):
                    ext = {**info, 'unread_label_replies': sum(bool(r.get('unread')) for r in rows)}
            if done is None and rows is None:
                continue                                  # another process scores this one
            results[label][dataset] = done or _score(f, dataset, where, rows, wheel, ext, key)
    if jax.process_index():
        return {}
    table = bench_table.build_table(results, select=select, extractor=info, question=_question(found),
                                    datasets_found={d: f['folder'] for d, f in found.items()})
    table['files'] = bench_table.write_table(out, table)
    return table
