"""AffectGPT's own label files and prediction caches, so that published outputs can be re-scored exactly.

Label files (built by AffectGPT's ``toolkit/preprocess/*.py``, read by ``get_test_name2gt`` in
``my_affectgpt/datasets/datasets/*.py``, fffca79) are ``.npz`` files whose arrays are pickled dicts
``name -> {'emo': ..., 'val': ...}``; they are read with ``safe_npz``'s restricted unpickler, never with
``allow_pickle=True``:

* MER2023, MER2024: ``test1_corpus``, ``emo`` a word;
* MELD: ``test_corpus``, ``emo`` an index into ``MELD_CLASSES``;
* IEMOCAPFour: ``whole_corpus``, test = session 5 (the 5th character of the name), ``emo`` an index into
  ``IEMOCAP_CLASSES``;
* CMUMOSI, CMUMOSEI, SIMS, SIMSv2: ``test_corpus``, ``val`` a float.

OV-MERD+'s gold is a CSV (``ovlabel.csv``), not an npz.

Prediction caches (``ew_metric.py``): ``<checkpoint>-openset.npz`` (the labels Qwen extracted, strings
such as ``[happy, excited]``) and ``<checkpoint>-openset-sentiment.npz`` (``positive``/``negative``/...),
each two plain unicode arrays ``filenames`` and ``fileitems``.
"""
from __future__ import annotations

import math
import numbers
import os

import numpy as np

from microemo_jax.metrics.safe_npz import load_npz_objects

MELD_CLASSES = ('anger', 'joy', 'sadness', 'neutral', 'disgust', 'fear', 'surprise')
IEMOCAP_CLASSES = ('happy', 'sad', 'neutral', 'anger')
CLASSES = {'MELD': MELD_CLASSES, 'IEMOCAPFour': IEMOCAP_CLASSES}
CORPUS_KEY = {'MER2023': 'test1_corpus', 'MER2024': 'test1_corpus', 'MELD': 'test_corpus',
              'IEMOCAPFour': 'whole_corpus', 'CMUMOSI': 'test_corpus', 'CMUMOSEI': 'test_corpus',
              'SIMS': 'test_corpus', 'SIMSv2': 'test_corpus'}
VALENCE_DATASETS = ('CMUMOSI', 'CMUMOSEI', 'SIMS', 'SIMSv2')


def _corpus(path: str, key: str) -> dict:
    arrays = load_npz_objects(path)
    if key not in arrays:
        raise ValueError(f"{path}: no array {key!r} (found {sorted(arrays)}); is this the dataset's label file?")
    value = arrays[key]
    corpus = value.item() if isinstance(value, np.ndarray) and value.shape == () else value
    if not isinstance(corpus, dict):
        raise ValueError(f"{path}[{key}]: expected a dict name -> {{'emo'|'val': ...}}, got {type(corpus).__name__}")
    return corpus


def _emo(dataset: str, value, where: str) -> str:
    if isinstance(value, str):
        return value
    classes = CLASSES.get(dataset)
    if classes is None or not isinstance(value, numbers.Integral) or not 0 <= int(value) < len(classes):
        allowed = f"a word or an index 0..{len(classes) - 1} into {list(classes)}" if classes else "a word"
        raise ValueError(f"{where}: emo {value!r} is not {allowed}")
    return classes[int(value)]


def _val(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{where}: val {value!r} is not a finite number")
    return float(value)


def load_label_npz(path: str | os.PathLike, dataset: str) -> dict[str, str | float]:
    """Test-set gold of ``dataset`` from its official label ``.npz``: name -> emotion word or valence."""
    path = os.fspath(path)
    if dataset not in CORPUS_KEY:
        raise ValueError(f"{path}: {dataset} has no label .npz (known: {', '.join(CORPUS_KEY)}); OVMERDPlus's "
                         f"gold is ovlabel.csv")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    key = CORPUS_KEY[dataset]
    field = 'val' if dataset in VALENCE_DATASETS else 'emo'
    gold = {}
    for name, entry in _corpus(path, key).items():
        where = f"{path}[{key}][{name!r}]"
        if not isinstance(name, str) or not isinstance(entry, dict) or field not in entry:
            raise ValueError(f"{where}: expected a name -> {{{field!r}: ...}} entry, got {entry!r:.80}")
        if dataset == 'IEMOCAPFour':
            if len(name) < 5 or not name[4].isdigit():
                raise ValueError(f"{where}: not an IEMOCAP name (SesNN...): its 5th character gives the session")
            if name[4] != '5':
                continue                                 # sessions 1-4 train, session 5 is the test set
        gold[name] = _val(entry[field], where) if field == 'val' else _emo(dataset, entry[field], where)
    return gold


def load_prediction_cache(path: str | os.PathLike) -> dict[str, str]:
    """An official ``*-openset.npz`` or ``*-openset-sentiment.npz``: name -> the cached string."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    arrays = load_npz_objects(path)
    missing = [k for k in ('filenames', 'fileitems') if k not in arrays]
    if missing:
        raise ValueError(f"{path}: no array {', '.join(missing)} (found {sorted(arrays)}); a prediction cache "
                         f"holds filenames and fileitems")
    names, items = (np.asarray(arrays[k]).reshape(-1).tolist() for k in ('filenames', 'fileitems'))
    if len(names) != len(items):
        raise ValueError(f"{path}: {len(names)} filenames but {len(items)} fileitems")
    out = {}
    for i, (name, item) in enumerate(zip(names, items)):
        if not isinstance(name, str) or not isinstance(item, str):
            raise ValueError(f"{path}: entry {i} ({name!r}, {item!r:.60}) is not a pair of strings")
        if name in out:
            raise ValueError(f"{path}: name {name!r} appears twice (entries {names.index(name)} and {i})")
        out[name] = item
    return out


def sentiment_cache_beside(openset_npz: str | os.PathLike) -> str:
    """Where the official pipeline keeps the sentiment cache of an ``*-openset.npz``."""
    path = os.fspath(openset_npz)
    return (path[:-len('.npz')] if path.endswith('.npz') else path) + '-sentiment.npz'
