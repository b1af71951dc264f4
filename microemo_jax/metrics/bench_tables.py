"""MER-UniBench's gold and prediction tables (CSV, or the official .npz files), read strictly.

A benchmark number must not quietly rest on a part of the file: any row that cannot be read stops the
run with one line naming the file and the line (unlike the MER2024-OV CLI, which lists bad rows and goes
on). Gold CSVs follow the official label files: ``name,emo`` (a word), ``name,val`` (a number) or
``name,openset`` (a label list; read as pandas reads ``ovlabel.csv``, so ``NA``-like cells are empty).
Prediction CSVs are ``name,openset[,sentiment]``: label cells are split later, leniently, as the official
scorer splits them, and a ``sentiment`` cell is kept verbatim.
"""
from __future__ import annotations

import csv
import math
import os

from microemo_jax.csv_cells import unescape_row
from microemo_jax.metrics.emotion_wheel import PANDAS_NA
from microemo_jax.metrics.official_files import load_label_npz, load_prediction_cache
from microemo_jax.table_keys import column_indices

GOLD_COLUMN = {'hit_rate': 'emo', 'waf': 'val', 'fs': 'openset'}


def read_rows(path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> tuple[dict, set]:
    """name -> {column: cell} for the columns asked for, and the set of optional columns present."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with open(path, newline='', encoding='utf-8-sig') as f:
            return _rows(path, csv.reader(f), required, optional)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason}, byte 0x{e.object[e.start]:02x} at offset "
                         f"{e.start}); save it as UTF-8") from None


def _rows(path, reader, required, optional):
    try:
        fields, at = column_indices(path, next(reader, None), required, optional)
        rows, first_line, line = {}, {}, reader.line_num
        for row in reader:
            row, start, line = unescape_row(row), line + 1, reader.line_num   # our writers' escape (csv_cells)
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(fields):
                raise ValueError(f"{path}:{start}: {len(row)} fields, expected {len(fields)} ({', '.join(fields)})")
            name = row[at['name']].strip()
            if not name:
                raise ValueError(f"{path}:{start}: empty name")
            if name in rows:
                raise ValueError(f"{path}:{start}: name {name!r} repeats line {first_line[name]}")
            first_line[name] = start
            rows[name] = {c: row[i] for c, i in at.items() if c != 'name'}
        return rows, {c for c in optional if c in at}
    except csv.Error as e:
        raise ValueError(f"{path}:{reader.line_num}: not readable as CSV ({e})") from None


def read_gold(path: str, dataset: str, metric: str) -> dict:
    """name -> emotion word (hit rate), valence (WAF) or label cell (OV F-score)."""
    if path.endswith('.npz'):
        return load_label_npz(path, dataset)
    column = GOLD_COLUMN[metric]
    rows, _ = read_rows(path, ('name', column))
    gold = {}
    for name, cells in rows.items():
        cell = cells[column]
        if metric == 'waf':
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise ValueError(f"{path}: {name}: val {cell!r} is not a finite number")
            gold[name] = value
        elif metric == 'hit_rate':
            if not cell.strip():
                raise ValueError(f"{path}: {name}: empty emo; every gold row names its emotion (e.g. neutral)")
            gold[name] = cell
        else:
            gold[name] = '' if cell in PANDAS_NA else cell
    return gold


def read_predictions(path: str, metric: str) -> tuple[dict, dict | None, str]:
    """(name -> label cell, name -> sentiment or None when the file has none, where the labels came from)."""
    if path.endswith('.npz'):
        return load_prediction_cache(path), None, 'cache'
    required = ('name',) if metric == 'waf' else ('name', 'openset')
    rows, present = read_rows(path, required, ('openset', 'sentiment') if metric == 'waf' else ('sentiment',))
    if metric == 'waf' and not present:
        raise ValueError(f"{path}: no column openset or sentiment; WAF needs one of them")
    labels = {n: c['openset'] for n, c in rows.items() if 'openset' in c}
    sentiments = {n: c['sentiment'] for n, c in rows.items()} if 'sentiment' in present else None
    return labels, sentiments, 'given'
