"""The prepared benchmark datasets under a data root, and whether a model can be asked about them.

``find_datasets`` finds every ``prepare --source <benchmark dataset>`` output folder directly under the root
(its ``prepare_report.json`` has a ``benchmark`` section); ``check_compatible`` refuses records prepared for
another model (other frame count, sizes, prompt length or tokenizer), saying how to prepare them again;
``digest`` identifies the inputs a finished score was made from (resume); ``checkpoint_labels`` names
parameter folders for the table.
"""
from __future__ import annotations

import hashlib
import json
import os
import re

from microemo_jax.data.raw.bench import BENCH_SOURCES
from microemo_jax.data.shapes import DataShapes
from microemo_jax.metrics.benchmark import DATASETS

SHAPES = {'num_frames': 'num_frames', 'frame_size': 'image_size', 'num_crops': 'num_crops',
          'max_seq_len': 'seq_len', 'num_video_tokens': 'video_tokens', 'num_audio_tokens': 'audio_tokens'}


class BenchError(RuntimeError):
    """The benchmark cannot run; the message says why and what to do."""


def find_datasets(root: str, only: list[str] | None = None) -> dict[str, dict]:
    """dataset -> {'folder', 'gold', 'report'} for every prepared benchmark folder directly under ``root``."""
    if not os.path.isdir(root):
        raise BenchError(f"--data-root {root} is not a folder")
    found = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        report_path = os.path.join(entry.path, 'prepare_report.json')
        if not entry.is_dir() or not os.path.isfile(report_path):
            continue
        with open(report_path, encoding='utf-8') as f:
            report = json.load(f)
        bench = report.get('benchmark')
        if not bench:
            continue
        dataset = bench['dataset']
        if dataset in found:
            raise BenchError(f"{root}: {found[dataset]['folder']} and {entry.path} both hold {dataset}; keep one")
        gold = os.path.join(entry.path, bench.get('gold_file', 'bench_gold.csv'))
        if not os.path.isfile(gold):
            raise BenchError(f"{entry.path}: no {os.path.basename(gold)}; re-run prepare on it")
        found[dataset] = {'folder': entry.path, 'gold': gold, 'report': report}
    if only:
        spelled = {**{d.lower(): d for d in DATASETS}, **BENCH_SOURCES}     # MELD, meld, iemocapfour, iemocap ...
        only = [spelled.get(d.strip().lower(), d) for d in only]
        unknown = [d for d in only if d not in DATASETS]
        if unknown:
            raise BenchError(f"--datasets {', '.join(unknown)}: not benchmark datasets ({', '.join(DATASETS)})")
        absent = [d for d in only if d not in found]
        if absent:
            raise BenchError(f"--datasets {', '.join(absent)}: not prepared under {root}")
        found = {d: v for d, v in found.items() if d in only}
    if not found:
        raise BenchError(f"no prepared benchmark dataset under {root}: prepare each one into its own folder there, "
                         f"e.g. python -m microemo_jax.prepare --source meld --raw MELD.Raw --out {root}/MELD "
                         f"(with the model's --config and --tokenizer; docs/metrics_benchmark.md)")
    return found


def checkpoint_labels(paths: list[str]) -> list[str]:
    """Short distinct names for parameter folders (a folder called ``params`` is named by its parent)."""
    labels = []
    for path in paths:
        parts = os.path.normpath(os.path.abspath(path)).split(os.sep)
        label = re.sub(r'[^\w.+-]', '_', parts[-2] if parts[-1] == 'params' and len(parts) > 1 else parts[-1])
        base, n = label, 2
        while label in labels:
            label, n = f'{base}-{n}', n + 1
        labels.append(label)
    return labels


def digest(*paths: str) -> str:
    h = hashlib.sha256()
    for path in paths:
        for root, dirs, files in os.walk(path) if os.path.isdir(path) else [('', [], [path])]:
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                st = os.stat(full)
                h.update(f'{os.path.relpath(full, path)}:{st.st_size}:{st.st_mtime_ns};'.encode())
    return h.hexdigest()


def check_compatible(folder, found: dict) -> None:
    """The prepared records must have the model's shapes and tokenizer; else say how to prepare them."""
    shapes, bench_dir = DataShapes.from_config(folder.cfg), found['folder']
    prepared = found['report'].get('config', {})
    wrong = [f"{k}={prepared[k]} (model: {getattr(shapes, a)})" for k, a in SHAPES.items()
             if k in prepared and prepared[k] != getattr(shapes, a)]
    tok = found['report'].get('tokenizers', {}).get('llm')
    mine = os.path.join(folder.path, 'tokenizers', 'llm')
    if tok and os.path.isdir(tok) and os.path.isdir(mine) and _files(tok) != _files(mine):
        wrong.append(f'the LLM tokenizer {tok} (model: {mine})')
    if wrong:
        raise BenchError(f"{bench_dir} was prepared for another model: {'; '.join(wrong)}. Prepare it again with "
                         f"the model's config and tokenizers (prepare --config ... --tokenizer {mine} "
                         f"--qformer-tokenizer {os.path.join(folder.path, 'tokenizers', 'qformer')})")


def _files(path: str) -> dict:
    out = {}
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            with open(full, 'rb') as f:
                out[name] = hashlib.sha256(f.read()).hexdigest()
    return out
