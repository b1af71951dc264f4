"""Emotion-wheel (EW) F-scores of MER2025 / AffectGPT, GPT-free at evaluation time.

Each label goes through MER's three maps: ``format_mapping`` (word form -> normalised labels), then
``raw_mapping`` (label -> wheel vocabulary; candidates sorted so the result is unique), then the first
candidate found in one wheel's level map (-> its level-1 or level-2 cluster). Unmapped labels are
dropped. Per wheel and level, a sample whose gold maps to nothing is skipped, an empty mapped
prediction scores precision = recall = 0, and F = 2PR/(P+R) comes from the dataset-mean P and R (not a
mean of per-sample F). ``ew_level{1,2}_f`` average F over the wheels; ``ew_mean`` is their mean.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping

import numpy as np

from microemo_jax.metrics.labels import normalise
from microemo_jax.metrics.safe_npz import load_npz_objects
from microemo_jax.table_keys import load_json

LEVELS = ('level1', 'level2')
_KEYS = ('format_mapping', 'raw_mapping', 'wheel_map_whole')


@dataclasses.dataclass(frozen=True)
class Wheel:
    """MER's three maps, validated; ``wheels[name][level]`` is a word -> cluster dict."""
    format_mapping: dict[str, tuple[str, ...]]
    raw_mapping: dict[str, tuple[str, ...]]
    wheels: dict[str, dict[str, dict[str, str]]]
    source: str

    def map_label(self, label: str, level_map: dict[str, str]) -> str:
        """The cluster of ``label`` in one wheel level, '' when it has none."""
        forms = self.format_mapping.get(label, ())
        candidates = sorted(r for f in forms for r in self.raw_mapping.get(f, ()))
        return next((level_map[c] for c in candidates if c in level_map), '')


def _word_lists(value, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a dict word -> list of words, got {type(value).__name__}")
    out = {}
    for k, v in value.items():
        if isinstance(v, str) or not isinstance(v, (list, tuple, set, frozenset)) \
                or not all(isinstance(x, str) for x in v) or not isinstance(k, str):
            raise ValueError(f"{where}: entry {k!r} -> {v!r} is not word -> list of words")
        out[k] = tuple(v)
    return out


def _wheel_maps(value, where: str) -> dict[str, dict[str, dict[str, str]]]:
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"{where}: expected a dict wheel name -> {{level1, level2}} maps")
    out = {}
    for name, levels in value.items():
        if not isinstance(levels, Mapping) or any(lv not in levels for lv in LEVELS):
            raise ValueError(f"{where}: wheel {name!r} needs the maps {LEVELS}, has "
                             f"{sorted(levels) if isinstance(levels, Mapping) else type(levels).__name__}")
        out[str(name)] = {}
        for lv in LEVELS:
            m = levels[lv]
            if not isinstance(m, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in m.items()):
                raise ValueError(f"{where}: wheel {name!r} {lv} is not a dict word -> cluster")
            out[str(name)][lv] = dict(m)
    return out


def _unwrap(value):
    """A 0-d object array (how MER stores each map) -> the object inside."""
    return value.item() if isinstance(value, np.ndarray) and value.shape == () else value


def load_wheel(path: str | os.PathLike) -> Wheel:
    """MER's ``wheel_mapping.npz`` (read with a restricted unpickler) or a JSON with the same three keys."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"wheel {path}: no such file")
    if path.endswith('.json'):
        try:
            data = load_json(path)  # a key given twice is refused
        except (json.JSONDecodeError, UnicodeDecodeError) as e:   # both name the file, never a bare codec error
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object with keys {_KEYS}")
    else:
        data = {k: _unwrap(v) for k, v in load_npz_objects(path).items()}
    missing = [k for k in _KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: missing {missing}; a wheel file holds {_KEYS} (found {sorted(data)})")
    return Wheel(_word_lists(data['format_mapping'], f'{path}: format_mapping'),
                 _word_lists(data['raw_mapping'], f'{path}: raw_mapping'),
                 _wheel_maps(data['wheel_map_whole'], f'{path}: wheel_map_whole'), path)


def _mapped(wheel: Wheel, labels, level_map, where: str) -> set[str]:
    try:
        words = normalise(labels)
    except TypeError as e:
        raise TypeError(f"{where}: {e}") from None
    return {c for c in (wheel.map_label(w, level_map) for w in words) if c}


def _one(wheel: Wheel, gold, pred, level_map) -> dict:
    precision, recall = [], []
    for name, labels in gold.items():
        g = _mapped(wheel, labels, level_map, f'gold[{name!r}]')
        if not g:
            continue
        p = _mapped(wheel, pred.get(name, ()), level_map, f'pred[{name!r}]')
        hit = len(g & p)
        precision.append(hit / len(p) if p else 0.0)
        recall.append(hit / len(g) if p else 0.0)
    P = sum(precision) / len(precision) if precision else 0.0
    R = sum(recall) / len(recall) if recall else 0.0
    return {'f': 2 * P * R / (P + R) if P + R else 0.0, 'precision': P, 'recall': R, 'n': len(precision)}


def score_wheel(gold: Mapping[str, list[str]], pred: Mapping[str, list[str]], wheel) -> dict:
    """EW scores of ``pred`` against ``gold`` (name -> labels); ``wheel`` from ``load_wheel`` (or a path).

    Returns ew_level1_f, ew_level2_f, ew_mean, the level means of precision and recall, and ``wheels``:
    per wheel and level its f, precision, recall and n (samples whose gold maps into that wheel; a
    wheel with n = 0 scores 0).
    """
    if not isinstance(wheel, Wheel):
        wheel = load_wheel(wheel)
    if not isinstance(gold, Mapping) or not isinstance(pred, Mapping):
        raise TypeError("gold and pred must be dicts name -> list of labels")
    per = {name: {lv: _one(wheel, gold, pred, maps[lv]) for lv in LEVELS}
           for name, maps in sorted(wheel.wheels.items())}
    out = {}
    for lv in LEVELS:
        for key in ('f', 'precision', 'recall'):
            out[f'ew_{lv}_{key}'] = sum(w[lv][key] for w in per.values()) / len(per)
    out['ew_mean'] = (out['ew_level1_f'] + out['ew_level2_f']) / 2
    out['wheels'] = per
    out['ignored_predictions'] = sorted(n for n in pred if n not in gold)
    return out
