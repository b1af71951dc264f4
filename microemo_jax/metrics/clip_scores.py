"""The OV and emotion-wheel scores split into per-clip parts, so a bootstrap can re-weight clips cheaply.

MER2024-OV's Accuracy_s and Recall_s are means over the scored clips of per-clip values; the emotion-wheel
F of each wheel and level is the F of the mean per-clip precision and recall over the clips whose gold maps
into that wheel. ``clip_parts`` takes those per-clip values from the metric functions themselves (each clip
scored on its own by ``score_ov`` / ``score_wheel``), and ``scores_from_counts`` aggregates them for any
clip weights: with every weight 1 it gives back exactly what ``score_ov`` / ``score_wheel`` give for the
whole set (``tests/metrics/test_intervals.py`` checks it), with bootstrap counts it gives one score per
resample.
"""
from __future__ import annotations

import numpy as np

from microemo_jax.metrics.intervals import Bootstrap, ratio
from microemo_jax.metrics.ov import score_ov
from microemo_jax.metrics.synonyms import as_synonyms
from microemo_jax.metrics.wheel import LEVELS, Wheel, load_wheel, score_wheel

OV_KEYS = ('accuracy_s', 'recall_s', 'avg')
WHEEL_KEYS = ('ew_level1_f', 'ew_level2_f', 'ew_mean')


def clip_parts(gold: dict, pred: dict, synonyms=None, wheel=None, *, skipped=()) -> dict:
    """Per-clip parts (numpy arrays in the order of ``gold``'s names). ``skipped``: gold names ``score_ov``
    reported as ``skipped_empty_gold`` for the whole set (they take no part in the OV means)."""
    names = list(gold)
    syn = as_synonyms(synonyms)
    skipped = set(skipped)
    acc, rec, valid = (np.zeros(len(names)) for _ in range(3))
    for i, name in enumerate(names):
        if name in skipped:
            continue
        one = score_ov({name: gold[name]}, {name: pred[name]} if name in pred else {}, syn)
        acc[i], rec[i], valid[i] = one['accuracy_s'], one['recall_s'], 1.0
    parts = {'names': names, 'ov': {'accuracy': acc, 'recall': rec, 'valid': valid}, 'wheel': None}
    if wheel is not None:
        wheel = wheel if isinstance(wheel, Wheel) else load_wheel(wheel)
        per = {}
        for i, name in enumerate(names):
            one = score_wheel({name: gold[name]}, {name: pred[name]} if name in pred else {}, wheel)['wheels']
            for w, levels in one.items():
                for lv, s in levels.items():
                    d = per.setdefault((w, lv), {k: np.zeros(len(names)) for k in ('precision', 'recall', 'valid')})
                    if s['n']:
                        d['precision'][i], d['recall'][i], d['valid'][i] = s['precision'], s['recall'], 1.0
        parts['wheel'] = per
    return parts


def scores_from_counts(parts: dict, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Each score for every row of clip weights ``counts`` (shape (R, n)): metric -> (R,) array."""
    counts = np.atleast_2d(np.asarray(counts, np.float64))
    ov = parts['ov']
    out = {'accuracy_s': ratio(ov['accuracy'] * ov['valid'], ov['valid'], counts),
           'recall_s': ratio(ov['recall'] * ov['valid'], ov['valid'], counts)}
    out['avg'] = (out['accuracy_s'] + out['recall_s']) / 2
    if parts['wheel'] is not None:
        wheels = sorted({w for w, _ in parts['wheel']})
        for lv in LEVELS:
            fs = []
            for w in wheels:
                d = parts['wheel'][(w, lv)]
                p = np.nan_to_num(ratio(d['precision'] * d['valid'], d['valid'], counts))
                r = np.nan_to_num(ratio(d['recall'] * d['valid'], d['valid'], counts))
                with np.errstate(divide='ignore', invalid='ignore'):
                    fs.append(np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1.0), 0.0))
            out[f'ew_{lv}_f'] = np.mean(fs, axis=0)
        out['ew_mean'] = (out['ew_level1_f'] + out['ew_level2_f']) / 2
    return out


def score_intervals(parts: dict, bootstrap: Bootstrap) -> dict[str, list[float] | None]:
    """metric -> [low, high]: the bootstrap interval of each score over the clips of ``parts``."""
    counts = bootstrap.counts(len(parts['names']))
    return {k: bootstrap.interval(v) for k, v in scores_from_counts(parts, counts).items()}
