"""Synonym groups for OV scoring: the bundled table, a JSON file, or MER2024's per-sample cache.

MER2024 maps every label to the first word of its synonym group before comparing sets, with groups
that GPT wrote for each sample and MERTools caches as ``openset-synonym/NAME.npy``. Reading that
cache reproduces the official numbers offline; the bundled table makes new predictions scorable
without any LLM.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence

import numpy as np

from microemo_jax.metrics.labels import normalise, parse_groups
from microemo_jax.metrics.lexicon import SYNONYM_GROUPS
from microemo_jax.table_keys import load_json


def groups_to_table(groups, where: str = 'synonym groups') -> dict[str, str]:
    """Word -> head of its group (first word, lower-cased and stripped); a later group wins, as in MER."""
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence):
        raise ValueError(f"{where}: expected a list of groups (lists of words), got {type(groups).__name__}")
    table = {}
    for k, group in enumerate(groups):
        if isinstance(group, (str, bytes)) or not isinstance(group, Sequence):
            raise ValueError(f"{where}: group {k} is {group!r}, expected a list of words")
        try:
            words = normalise(group)
        except TypeError as e:
            raise ValueError(f"{where}: group {k}: {e}") from None
        for w in words:
            table[w] = words[0]
    return table


@dataclasses.dataclass(frozen=True)
class Synonyms:
    """One table for every sample (``shared``) or one per sample name (``per_sample``); ``source`` says which.

    ``split_quotes``: MER read "don't believe" as 'don' + 't believe' (its parser splits on quotes) before
    asking GPT for groups, so its cache groups those pieces; with it set, a label the table lacks is
    split the same way when the table knows a piece, which reproduces the official scores exactly.
    """
    source: str
    shared: dict[str, str] | None = None
    per_sample: dict[str, dict[str, str]] | None = None
    warnings: tuple[str, ...] = ()
    split_quotes: bool = False

    def table(self, name: str) -> dict[str, str] | None:
        """The sample's word -> head table; None when a per-sample source has no entry for it."""
        return self.shared if self.per_sample is None else self.per_sample.get(name)

    def heads(self, words: list[str], table: dict[str, str] | None) -> set[str]:
        """The set of group heads of ``words`` (already normalised); a word in no group stays itself."""
        table, out = table or {}, set()
        for w in words:
            pieces = _quote_pieces(w) if self.split_quotes and w not in table else []
            if any(p in table for p in pieces):
                out.update(table.get(p, p) for p in pieces)
            else:
                out.add(table.get(w, w))
        return out


def _quote_pieces(word: str) -> list[str]:
    return [p for p in re.split('[\'"]', word) if p.strip() not in ('', ',')] if ("'" in word or '"' in word) else []


def bundled() -> Synonyms:
    return Synonyms('bundled table (microemo_jax/metrics/lexicon.py)', shared=groups_to_table(SYNONYM_GROUPS))


def _from_json(path: str) -> Synonyms:
    try:
        data = load_json(path)  # a sample or key given twice is refused
    except (json.JSONDecodeError, UnicodeDecodeError) as e:   # both name the file, never a bare codec error
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if isinstance(data, list):
        return Synonyms(f'JSON groups {path}', shared=groups_to_table(data, path))
    if isinstance(data, dict):
        return Synonyms(f'per-sample JSON groups {path}', per_sample={
            str(name): groups_to_table(groups, f'{path}: sample {name!r}') for name, groups in data.items()})
    raise ValueError(f"{path}: expected a JSON list of groups or an object name -> list of groups, "
                     f"got {type(data).__name__}")


def _lenient_groups(text: str) -> list[list[str]]:
    """MER's own reading of a cache string: split on brackets, then on quotes (for GPT's odd outputs)."""
    groups = []
    for chunk in text.replace(']', '[').split('['):
        if chunk.strip() in ('', ','):
            continue
        words = [w for w in chunk.replace('"', "'").split("'") if w.strip() not in ('', ',')]
        groups.append(words)
    return groups


def _cache_string(path: str) -> str:
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{path}: not a plain .npy string array ({e}); expected MERTools' 0-d unicode cache") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind != 'U' or arr.size != 1:
        raise ValueError(f"{path}: expected a 0-d unicode array holding a list of lists, "
                         f"got dtype {getattr(arr, 'dtype', type(arr))} shape {getattr(arr, 'shape', None)}")
    return str(arr.reshape(())[()])


def _from_cache(directory: str) -> Synonyms:
    files = sorted(f for f in os.listdir(directory) if f.endswith('.npy'))
    if not files and os.path.isdir(os.path.join(directory, 'openset-synonym')):
        return _from_cache(os.path.join(directory, 'openset-synonym'))
    if not files:
        raise ValueError(f"{directory}: no NAME.npy files; expected MERTools' openset-synonym cache directory")
    per_sample, warnings = {}, []
    for fname in files:
        path = os.path.join(directory, fname)
        text = _cache_string(path)
        try:
            groups = parse_groups(text)
        except ValueError as e:
            groups = _lenient_groups(text)
            warnings.append(f"{path}: not a clean list of lists ({e}); read MER's way as {groups!r}")
        per_sample[fname[:-len('.npy')]] = groups_to_table(groups, path)
    return Synonyms(f'MER2024 per-sample cache {directory}', per_sample=per_sample, warnings=tuple(warnings),
                    split_quotes=True)


def load_synonyms(path: str | os.PathLike | None = None) -> Synonyms:
    """Synonyms from ``path`` (JSON list of groups, JSON name -> groups, or a cache directory); None: bundled."""
    if path is None:
        return bundled()
    path = os.fspath(path)
    if os.path.isdir(path):
        return _from_cache(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"synonyms {path}: no such file or directory")
    if path.endswith('.npy'):
        raise ValueError(f"synonyms {path}: one cache file; pass the directory holding the NAME.npy files")
    return _from_json(path)


def as_synonyms(value) -> Synonyms:
    """What ``score_ov`` accepts: None (bundled), a Synonyms, a path, a list of groups, or name -> groups."""
    if value is None:
        return bundled()
    if isinstance(value, Synonyms):
        return value
    if isinstance(value, (str, os.PathLike)):
        return load_synonyms(value)
    if isinstance(value, Mapping):
        return Synonyms('per-sample groups (given in code)', per_sample={
            str(k): groups_to_table(v, f'sample {k!r}') for k, v in value.items()})
    return Synonyms('groups (given in code)', shared=groups_to_table(value))
