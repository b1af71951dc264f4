"""A table's keys must be unique: a column named twice, or a JSON key given twice, is refused, naming the file.

Python's ``csv.DictReader`` (and a ``header.index(name)`` lookup) silently keeps one of two same-named
columns: a ``labels.csv`` with two ``openset`` columns trained on whichever came last. ``json.load`` does
the same with a key given twice. Which one the author meant cannot be known, so every reader of label,
split, score and per-sample tables passes its header through ``checked_header`` first, and the JSON files a
user hands us (synonym groups, wheel mappings, a parameter folder's ``config.json``, a ``--scores`` summary)
are read with ``load_json``. Column names are compared stripped and case-folded (``OpenSet`` and ``openset``
are the same column to a reader that lower-cases); empty names (trailing commas) are never looked up and
may repeat.
"""
from __future__ import annotations

import json
import os


def duplicated_columns(header) -> list[str]:
    """The column names (stripped, case-folded) that appear more than once in ``header``, in header order."""
    seen, twice = set(), []
    for cell in header:
        name = str(cell).strip().casefold()
        if name and name in seen and name not in twice:
            twice.append(name)
        seen.add(name)
    return twice


def checked_header(path: str | os.PathLike, header) -> list[str]:
    """``header`` with each name stripped; ValueError naming ``path`` and the column when a name repeats."""
    twice = duplicated_columns(header)
    if twice:
        shown = [str(h) for h in header]
        count = [h.strip().casefold() for h in shown].count(twice[0])
        raise ValueError(f"{os.fspath(path)}: column {twice[0]!r} appears {count} times in the header {shown}: "
                         f"which one is meant cannot be told; keep one")
    return [str(h).strip() for h in header]


def column_indices(path: str | os.PathLike, header, required, optional=()) -> tuple[list[str], dict[str, int]]:
    """The header's names (checked, lower-cased) and the index of each required column and of each optional one
    present; ValueError naming ``path`` for an empty file or a missing required column."""
    if header is None:
        raise ValueError(f"{os.fspath(path)}: empty file; expected a header with columns {', '.join(required)}")
    fields = [h.lower() for h in checked_header(path, header)]
    missing = [c for c in required if c not in fields]
    if missing:
        raise ValueError(f"{os.fspath(path)}: no column {', '.join(missing)} in the header {header}; expected columns "
                         f"{', '.join(required)}{''.join(f'[,{c}]' for c in optional)}")
    return fields, {c: fields.index(c) for c in (*required, *optional) if c in fields}


def load_json(path: str | os.PathLike, f=None):
    """``json.load`` of ``path`` (or the open file ``f``) that refuses an object with a key given twice (ValueError
    naming the file and the key); other JSON errors are ``json.JSONDecodeError`` as usual."""
    def unique(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"{os.fspath(path)}: the key {key!r} is given twice in one JSON object: which value "
                                 f"is meant cannot be told; keep one")
            seen.add(key)
        return dict(pairs)
    if f is not None:
        return json.load(f, object_pairs_hook=unique)
    with open(path, encoding='utf-8') as f:
        return json.load(f, object_pairs_hook=unique)
