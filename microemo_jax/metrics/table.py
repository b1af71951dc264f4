"""MER's label CSVs (``name, openset``) read into name -> labels, every bad row reported by line.

A row that cannot be read (too few fields, no name, a cell that is not a list, a repeated name) is
kept out of the scores and listed with its line number, so nothing is lost without a word.
"""
from __future__ import annotations

import csv
import dataclasses
import os

from microemo_jax.csv_cells import unescape_row
from microemo_jax.metrics.labels import parse_labels
from microemo_jax.table_keys import column_indices

COLUMNS = ('name', 'openset')


@dataclasses.dataclass
class LabelTable:
    labels: dict[str, list[str]]
    malformed: list[dict]          # {'file', 'line', 'reason'}


def read_label_csv(path: str | os.PathLike, columns: tuple[str, str] = COLUMNS) -> LabelTable:
    """Reads ``path``; raises only when the file itself is unusable (missing, not UTF-8, no such columns)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return _read(path, columns)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason}, byte 0x{e.object[e.start]:02x} at offset "
                         f"{e.start}); save it as UTF-8") from None
    except csv.Error as e:                       # e.g. a NUL byte: not a text file
        raise ValueError(f"{path}: not a readable CSV ({e})") from None


def _read(path: str, columns: tuple[str, str]) -> LabelTable:
    with open(path, newline='', encoding='utf-8-sig') as f:
        reader = csv.reader(f)
        fields, at = column_indices(path, next(reader, None), columns)
        i_name, i_labels = (at[c] for c in columns)
        labels, malformed, first_line, line = {}, [], {}, reader.line_num
        for row in reader:
            row, start, line = unescape_row(row), line + 1, reader.line_num   # our writers' escape (csv_cells)
            if not any(cell.strip() for cell in row):
                continue                                   # blank line
            bad = lambda reason: malformed.append({'file': path, 'line': start, 'reason': reason})  # noqa: E731
            if len(row) <= max(i_name, i_labels):
                bad(f"{len(row)} fields, expected {len(fields)}")
                continue
            name = row[i_name].strip()
            if not name:
                bad("empty name")
                continue
            if name in labels or name in first_line:
                bad(f"name {name!r} repeats line {first_line[name]}; the first row is kept")
                continue
            first_line[name] = start
            try:
                labels[name] = parse_labels(row[i_labels])
            except ValueError as e:
                bad(f"{name}: {columns[1]} cell is not a list of labels: {e}")
    return LabelTable(labels, malformed)
