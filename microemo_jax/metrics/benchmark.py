"""MER-UniBench's three scores (hit rate, WAF, emotion-wheel F), exactly as AffectGPT's code computes them.

Read in AffectGPT fffca79: ``my_affectgpt/evaluation/wheel.py`` (calculate_openset_onehot_hitrate,
calculate_openset_overlap_rate, func_backward_case3), ``ew_metric.py`` (hitrate_metric_calculation,
wheel_metric_calculation) and ``evaluation-scoreonly.py`` (calculate_dimension_zeroshot). The quirks kept:

* labels are split as ``labels.split_list_string`` splits them, then lower-cased and stripped;
* a label goes to its level-1 cluster through the table's alphabetically first candidate present in
  that wheel (``Wheel.map_label``); a label that reaches no cluster is dropped;
* each wheel scores only the samples whose gold reaches a cluster in it (so ``neutral`` gold is never
  scored, and the five wheels score different subsets), then the five wheel scores are averaged;
* the hit count is ``|clusters(pred) & clusters(gold)|``;
* OV-MERD+ gold goes through ``", ".join`` and a second split, and an empty gold list becomes ``neutral``;
* F = 2PR/(P+R) from the sample means of precision and recall, per wheel;
* WAF drops gold ``val == 0``, reads only the exact strings ``positive``/``negative``/``neutral``
  (anything else is neutral) and takes sklearn's weighted F1 of ``val > 0`` against ``pred > 0``.

Where the official code cannot give a number we differ, and say so in the result: a gold name without a
prediction scores as a miss (officially a KeyError); F is 0 when P + R = 0 (officially NaN); a wheel
that scores no sample gives None, and so does the mean (officially NaN).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from microemo_jax.metrics.labels import split_list_string
from microemo_jax.metrics.wheel import Wheel

DATASETS = {'MER2023': 'hit_rate', 'MER2024': 'hit_rate', 'MELD': 'hit_rate', 'IEMOCAPFour': 'hit_rate',
            'CMUMOSI': 'waf', 'CMUMOSEI': 'waf', 'SIMS': 'waf', 'SIMSv2': 'waf', 'OVMERDPlus': 'fs'}
"""Dataset (the official spelling) -> its main metric."""
TEST_SIZES = {'MER2023': 411, 'MER2024': 1169, 'MELD': 2610, 'IEMOCAPFour': 1241, 'CMUMOSI': 686, 'CMUMOSEI': 4659,
              'SIMS': 457, 'SIMSv2': 1034, 'OVMERDPlus': 532}
"""The official test sets' sizes (asserted in AffectGPT's dataset classes); a different count is reported."""
LEVEL = 'level1'
SENTIMENT_VALUES = {'positive': 1, 'negative': -1, 'neutral': 0}


def _words(cell) -> list[str]:
    return [w.lower().strip() for w in split_list_string(cell)]


def _ov_gold(cell) -> list[str]:
    """OV-MERD+'s gold as the official dataset class hands it to the scorer (ovmerdplus_dataset.py)."""
    items = split_list_string(cell) or ['neutral']
    return _words(', '.join(items))


def _clusters(table: Wheel, words, level_map) -> set[str]:
    return {c for c in (table.map_label(w, level_map) for w in words) if c}


def _mean(values) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _common(gold: Mapping, pred: Mapping) -> dict:
    if not isinstance(gold, Mapping) or not isinstance(pred, Mapping):
        raise TypeError("gold and pred must be dicts name -> labels")
    missing = [n for n in gold if n not in pred]
    return {'n': len(gold), 'missing_predictions': len(missing), 'missing_names': missing,
            'ignored_predictions': sorted(n for n in pred if n not in gold)}


def _wheel_mean(per_wheel: dict, key: str) -> float | None:
    values = [w[key] for w in per_wheel.values()]
    return None if any(v is None for v in values) else float(np.mean(values))


def hit_rate(gold: Mapping, pred: Mapping, table: Wheel) -> dict:
    """Basic-emotion datasets. ``gold``: name -> the label word; ``pred``: name -> label string or list."""
    out = _common(gold, pred)
    gold_words = {name: _words(cell) for name, cell in gold.items()}
    pred_words = {name: _words(cell) for name, cell in pred.items()}
    wheels = {}
    for wheel_name in sorted(table.wheels):
        level_map = table.wheels[wheel_name][LEVEL]
        hits = []
        for name, words in gold_words.items():
            g = _clusters(table, words, level_map)
            if g:
                hits.append(len(_clusters(table, pred_words.get(name, ()), level_map) & g))
        wheels[wheel_name] = {'hit_rate': _mean(hits), 'n': len(hits)}
    return {'hit_rate': _wheel_mean(wheels, 'hit_rate'), **out, 'wheels': wheels}


def wheel_fscore(gold: Mapping, pred: Mapping, table: Wheel) -> dict:
    """OV-MERD+. ``gold`` and ``pred``: name -> label string (``[a, b]``) or list of labels."""
    out = _common(gold, pred)
    gold_words = {name: _ov_gold(cell) for name, cell in gold.items()}
    pred_words = {name: _words(cell) for name, cell in pred.items()}
    wheels = {}
    for wheel_name in sorted(table.wheels):
        level_map = table.wheels[wheel_name][LEVEL]
        precision, recall = [], []
        for name, words in gold_words.items():
            g = _clusters(table, words, level_map)
            if not g:
                continue
            p = _clusters(table, pred_words.get(name, ()), level_map)
            precision.append(len(g & p) / len(p) if p else 0)
            recall.append(len(g & p) / len(g) if p else 0)
        P, R = _mean(precision), _mean(recall)
        F = None if P is None else (2 * (P * R) / (P + R) if P + R else 0.0)
        wheels[wheel_name] = {'fs': F, 'precision': P, 'recall': R, 'n': len(precision)}
    return {'fs': _wheel_mean(wheels, 'fs'), 'precision': _wheel_mean(wheels, 'precision'),
            'recall': _wheel_mean(wheels, 'recall'), **out, 'wheels': wheels}


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """sklearn's ``f1_score(average='weighted')`` for two label arrays, written out (no sklearn dependency):
    per class present in either, F1 = 2tp / (true + predicted), averaged with the true counts as weights."""
    f1, support = [], []
    for c in np.unique(np.concatenate([y_true, y_pred])):
        true, predicted = y_true == c, y_pred == c
        f1.append(2 * np.sum(true & predicted) / (np.sum(true) + np.sum(predicted)))
        support.append(np.sum(true))
    return float(np.average(f1, weights=support))


def waf(gold: Mapping[str, float], pred: Mapping[str, str]) -> dict:
    """Sentiment datasets. ``gold``: name -> valence ``val``; ``pred``: name -> sentiment string, verbatim.

    A missing prediction is scored as the wrong side of zero (a miss); an unknown string counts as neutral
    (value 0, so not positive), as officially, and is listed.
    """
    out = _common(gold, pred)
    vals, positive, unknown = [], [], {}
    for name, val in gold.items():
        vals.append(float(val))
        if name not in pred:
            positive.append(not float(val) > 0)
            continue
        value = SENTIMENT_VALUES.get(pred[name]) if isinstance(pred[name], str) else None
        if value is None:
            unknown[name] = pred[name] if isinstance(pred[name], str) else repr(pred[name])
            value = 0
        positive.append(value > 0)
    vals, positive = np.array(vals, dtype=float), np.array(positive, dtype=bool)
    keep = vals != 0
    if not keep.any():
        raise ValueError(f"no gold sample with val != 0 among {len(vals)}: WAF drops val == 0, so nothing is left")
    y_true, y_pred = vals[keep] > 0, positive[keep]
    return {'waf': weighted_f1(y_true, y_pred), 'accuracy': float(np.mean(y_true == y_pred)), **out,
            'n_scored': int(keep.sum()), 'dropped_zero': int((~keep).sum()),
            'unknown_sentiments': len(unknown), 'unknown_examples': dict(list(unknown.items())[:10])}
