"""AffectGPT's published prediction caches as the checkpoints of a benchmark table (``--extractor cache``).

AffectGPT's evaluation (fffca79 ``evaluation-scoreonly.py``) keeps, per dataset, ``output/results-<dataset
in lower case>/<run>/checkpoint_0000NN_loss_X-openset.npz`` (the labels Qwen extracted, ``filenames`` and
``fileitems``) and ``...-openset-sentiment.npz`` beside it. Each training epoch ``checkpoint_0000NN`` is one
checkpoint of the table, across the datasets. The cached label strings are scored verbatim, exactly as the
official code splits them; a dataset without a sentiment cache takes its sentiments from the valence table.
"""
from __future__ import annotations

import glob
import os
import re

from microemo_jax.metrics.extractors import CacheExtractor
from microemo_jax.metrics.labels import split_list_string
from microemo_jax.metrics.official_files import sentiment_cache_beside

_CACHE = re.compile(r'^(checkpoint_(\d+))[^/\\]*-openset\.npz$')


def _label(value: str) -> str:
    return f'checkpoint_{int(value):06d}' if value.isdigit() else value


def checkpoints(cache: str | None, datasets: list[str], *, select: str, checkpoint: str | None) -> dict:
    """checkpoint label -> dataset -> its ``*-openset.npz``; raises ValueError naming what is missing."""
    if not cache or not os.path.isdir(cache):
        raise ValueError(f"--extractor cache needs --cache, AffectGPT's output folder (results-<dataset>/<run>/"
                         f"checkpoint_*-openset.npz); got {cache!r}")
    found: dict[str, dict[str, str]] = {}
    for dataset in datasets:
        folder = os.path.join(cache, f'results-{dataset.lower()}')
        for path in sorted(glob.glob(os.path.join(glob.escape(folder), '**', '*-openset.npz'), recursive=True)):
            m = _CACHE.match(os.path.basename(path))
            if not m:
                continue
            per = found.setdefault(m.group(1), {})
            if dataset in per:
                raise ValueError(f"{folder} holds {m.group(1)} twice ({per[dataset]} and {path}): keep one run there")
            per[dataset] = path
    if not found:
        raise ValueError(f"{cache}: no results-<dataset>/**/checkpoint_*-openset.npz for {', '.join(datasets)}")
    names = sorted(found)
    if checkpoint:
        wanted = _label(checkpoint)
        if wanted not in found:
            raise ValueError(f"--checkpoint {checkpoint}: not among the caches ({', '.join(names)})")
        if select == 'single':
            return {wanted: found[wanted]}
        names = [wanted] + [n for n in names if n != wanted]
    elif select == 'single' and len(names) > 1:
        raise ValueError(f"the caches hold {len(names)} checkpoints ({', '.join(names)}): name one with --checkpoint "
                         f"or score them all with --select best")
    return {n: found[n] for n in names}


def rows(openset_npz: str) -> list[dict]:
    """One prediction row per cached clip: the label string verbatim, the cached (or lexicon) sentiment."""
    cache = CacheExtractor(openset_npz)
    out = []
    for name, cell in sorted(cache.openset.items()):
        sentiment = cache.sentiment(name, split_list_string(cell))
        out.append({'name': name, 'openset': cell, 'sentiment': '' if sentiment is None else sentiment})
    return out


def sentiment_source(openset_npz: str) -> str:
    return 'cache' if os.path.isfile(sentiment_cache_beside(openset_npz)) else 'lexicon'


def identity(openset_npz: str) -> list:
    """What a cached score was made from: the two files' paths, sizes and modification times."""
    out = []
    for path in (openset_npz, sentiment_cache_beside(openset_npz)):
        st = os.stat(path) if os.path.isfile(path) else None
        out.append([os.path.abspath(path), st and st.st_size, st and st.st_mtime_ns])
    return out
