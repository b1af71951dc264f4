"""Names that look like spreadsheet formulas are neutralised in every CSV we write, and read back exactly."""
from __future__ import annotations

import csv

import pytest

from microemo_jax.csv_cells import FORMULA_STARTS, escape_cell, unescape_cell
from microemo_jax.data.raw.labels import read_split_file
from microemo_jax.data.raw.splits import write_splits_csv
from microemo_jax.metrics.per_sample import read_per_sample, write_per_sample
from microemo_jax.metrics.table import read_label_csv

HOSTILE = ['=SUM(A1:A9)', '+cmd', '-3xK9abc', '@HYPERLINK("x")', '\tTAB', '\rCR', "'quoted", "''", "'", "'=x",
           'plain', '=', '-']


def raw_cells(path) -> list[list[str]]:
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.reader(f))


def formula_cells(path) -> list[str]:
    return [c for row in raw_cells(path) for c in row if c[:1] in FORMULA_STARTS]


@pytest.mark.parametrize('text', HOSTILE + ['', 'a=b', ' =x'])
def test_escape_round_trips_every_string(text):
    assert unescape_cell(escape_cell(text)) == text
    assert escape_cell(text)[:1] not in FORMULA_STARTS


def test_splits_csv_is_neutralised_and_reads_back(tmp_path):
    path = tmp_path / 'splits.csv'
    names = [n for n in HOSTILE if n.strip() and not n.startswith(("'", '\t', '\r'))]
    write_splits_csv(str(path), {n: 'train' for n in names})
    assert formula_cells(path) == []
    assert sorted(read_split_file(str(path))) == sorted(names)


def test_per_sample_csv_is_neutralised_and_reads_back(tmp_path):
    path = tmp_path / 'per_sample.csv'
    rows = [{'name': n, 'gold': ['happy'], 'predicted': ['sad'], 'explanation': f'-{i} =x'}
            for i, n in enumerate(HOSTILE)]
    write_per_sample(str(path), rows)
    assert formula_cells(path) == []
    assert [{k: r[k] for k in rows[0]} for r in read_per_sample(str(path))] == rows   # (+ the time columns)


def test_label_csv_readers_undo_the_escape(tmp_path):
    path = tmp_path / 'labels.csv'
    with open(path, 'w', newline='', encoding='utf-8') as f:
        csv.writer(f).writerows([['name', 'openset'], [escape_cell('-mosei_id'), "['happy']"]])
    assert read_label_csv(str(path)).labels == {'-mosei_id': ['happy']}
