"""AffectGPT's ``emotion_wheel/`` folder, read into the three maps MER-UniBench scores with.

The folder holds ``format.csv`` (a base word and its other forms), ``synonym.xlsx`` (eight GPT runs of
base word -> synonyms, every base word a word of some wheel) and ``wheel1..5.xlsx`` (three-level
wheels, columns ``level1, level2, level3``, a blank cell repeating the cell above). We rebuild the maps
as the official code does (AffectGPT fffca79, ``my_affectgpt/evaluation/wheel.py``: read_wheel_to_map,
read_candidate_synonym_merge, read_format2raws, func_get_wheel_cluster), quirks included:

* a blank cell carries the last value down, also across a change of the column to its left;
* wheel words and synonyms are lower-cased and stripped, ``format.csv`` cells are not;
* a later occurrence of a word in a wheel overrides an earlier one, in the sheet's order;
* level-2 clusters send a level-1 word to its alphabetically first level-2 word;
* the official reader goes through pandas, so cells pandas reads as missing (``NA``, ``null``, ...) are
  blanks here too.

The result is a ``wheel.Wheel``, the type MER2025's ``wheel_mapping.npz`` loads into: the two tables
differ on purpose (the benchmark uses the folder, MER2025 the npz), and ``load_table`` reads either.
openpyxl reads the sheets (a real xlsx reader; the csv module reads ``format.csv``).
"""
from __future__ import annotations

import csv
import glob
import os

import openpyxl

from microemo_jax.metrics.labels import split_list_string
from microemo_jax.metrics.wheel import LEVELS, Wheel, load_wheel
from microemo_jax.table_keys import checked_header

WHEELS = ('wheel1', 'wheel2', 'wheel3', 'wheel4', 'wheel5')
SYNONYM_RUNS = tuple(f'run{k}' for k in range(1, 9))
WHEEL_COLUMNS = ('level1', 'level2', 'level3')
# pandas' default missing-value strings (read_csv/read_excel na_values): such a cell is a blank officially.
PANDAS_NA = frozenset({'', '#N/A', '#N/A N/A', '#NA', '-1.#IND', '-1.#QNAN', '-NaN', '-nan', '1.#IND', '1.#QNAN',
                       '<NA>', 'N/A', 'NA', 'NULL', 'NaN', 'None', 'n/a', 'nan', 'null'})


def _word(value, where: str) -> str | None:
    """A cell as the official reader sees it: None for a blank, else the string; numbers are refused."""
    if value is None or (isinstance(value, str) and value in PANDAS_NA):
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}: {value!r} is not a word (a {type(value).__name__}); every cell holds text")
    return value


def _sheet(path: str, columns) -> list[tuple[int, dict]]:
    """(Excel row number, {column: cell}) for the first sheet's rows below the header; blank rows skipped."""
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises zip, XML and its own errors for a file that is not a workbook
        raise ValueError(f"{path}: not a readable .xlsx workbook ({type(e).__name__}: {e})") from None
    try:
        rows = list(book.worksheets[0].iter_rows(values_only=True))
    finally:
        book.close()
    header = [str(h) if h is not None else '' for h in (rows[0] if rows else ())]
    for c in columns:
        if header.count(c) != 1:
            problem = 'no column' if c not in header else 'a repeated column'
            raise ValueError(f"{path}: {problem} {c!r} in the header {header}; expected columns {', '.join(columns)}")
    at = {c: header.index(c) for c in columns}
    out = []
    for number, row in enumerate(rows[1:], start=2):
        cells = {c: (row[i] if i < len(row) else None) for c, i in at.items()}
        if any(v is not None for v in cells.values()):
            out.append((number, cells))
    return out


def read_wheel_sheet(path: str) -> dict[str, dict[str, list[str]]]:
    """``wheelK.xlsx`` -> level1 -> level2 -> [level3], in sheet order, blanks carried down."""
    tree: dict[str, dict[str, list[str]]] = {}
    current = dict.fromkeys(WHEEL_COLUMNS, '')
    for number, cells in _sheet(path, WHEEL_COLUMNS):
        for c in WHEEL_COLUMNS:
            value = _word(cells[c], f"{path}: row {number} column {c}")
            if value is not None:
                current[c] = value
            current[c] = current[c].lower().strip()
        l1, l2, l3 = (current[c] for c in WHEEL_COLUMNS)
        tree.setdefault(l1, {}).setdefault(l2, []).append(l3)
    return tree


def wheel_clusters(tree: dict[str, dict[str, list[str]]], level: str) -> dict[str, str]:
    """Every word of one wheel -> its cluster at ``level`` ('level1' or 'level2'); later words override."""
    clusters: dict[str, str] = {}
    for l1, branches in tree.items():
        clusters[l1] = l1 if level == 'level1' else sorted(branches)[0]
        for l2, leaves in branches.items():
            clusters[l2] = l1 if level == 'level1' else l2
            for l3 in leaves:
                clusters[l3] = l1 if level == 'level1' else l2
    return clusters


def _wheel_words(folder: str) -> set[str]:
    """Every word of every ``wheel*.xlsx`` in the folder (the official check globs them all)."""
    words = set()
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), 'wheel*.xlsx'))):
        for l1, branches in read_wheel_sheet(path).items():
            words.add(l1)
            for l2, leaves in branches.items():
                words.add(l2)
                words.update(leaves)
    return words


def read_synonyms(path: str, wheel_words: set[str]) -> dict[str, tuple[str, ...]]:
    """``synonym.xlsx`` -> word -> the wheel words it stands for (itself too, if it is one), all runs merged."""
    columns = [f'{kind}_{run}' for run in SYNONYM_RUNS for kind in ('word', 'synonym')]
    merged: dict[str, set[str]] = {}
    for number, cells in _sheet(path, columns):
        for run in SYNONYM_RUNS:
            where = f"{path}: row {number} column word_{run}"
            raw = _word(cells[f'word_{run}'], where)
            synonyms = _word(cells[f'synonym_{run}'], f"{path}: row {number} column synonym_{run}")
            if raw is None:
                if synonyms is not None:
                    raise ValueError(f"{where}: blank, but synonym_{run} holds {synonyms!r}")
                continue
            raw = raw.strip().lower()
            if raw not in wheel_words:
                raise ValueError(f"{where}: {raw!r} is not a word of any wheel*.xlsx in {os.path.dirname(path)}")
            merged.setdefault(raw, set()).add(raw)
            for synonym in split_list_string(synonyms or ''):
                merged.setdefault(synonym.strip().lower(), set()).add(raw)
    return {word: tuple(sorted(raws)) for word, raws in merged.items()}


def read_formats(path: str) -> dict[str, tuple[str, ...]]:
    """``format.csv`` (``name, format``) -> every form and every name -> the names it is a form of."""
    try:
        with open(path, newline='', encoding='utf-8-sig') as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    header = checked_header(path, rows[0]) if rows else []
    for c in ('name', 'format'):
        if header.count(c) != 1:
            raise ValueError(f"{path}: {'no' if c not in header else 'a repeated'} column {c!r} in the header "
                             f"{header}; expected columns name, format")
    i_name, i_format = header.index('name'), header.index('format')
    forms: dict[str, list[str]] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}: line {number}: {len(row)} fields, expected {len(header)}")
        name, cell = ('' if row[i] in PANDAS_NA else row[i] for i in (i_name, i_format))
        for form in split_list_string(cell):
            forms.setdefault(form, []).append(name)
        forms.setdefault(name, []).append(name)
    return {form: tuple(names) for form, names in forms.items()}


def load_wheel_folder(folder: str | os.PathLike) -> Wheel:
    """The ``emotion_wheel/`` folder as a ``Wheel`` (wheels wheel1..wheel5, levels level1 and level2)."""
    folder = os.fspath(folder)
    needed = ['format.csv', 'synonym.xlsx'] + [f'{w}.xlsx' for w in WHEELS]
    missing = [n for n in needed if not os.path.isfile(os.path.join(folder, n))]
    if missing:
        raise FileNotFoundError(f"{folder}: no {', '.join(missing)}; an emotion_wheel folder holds {', '.join(needed)}")
    synonyms = read_synonyms(os.path.join(folder, 'synonym.xlsx'), _wheel_words(folder))
    formats = read_formats(os.path.join(folder, 'format.csv'))
    unknown = sorted({n for names in formats.values() for n in names if n not in synonyms})
    if unknown:   # the official scorer raises KeyError on the first label that reaches one of them
        raise ValueError(f"{folder}/format.csv: {len(unknown)} names are not words of synonym.xlsx "
                         f"({', '.join(map(repr, unknown[:5]))}); every format.csv name must be one")
    trees = {w: read_wheel_sheet(os.path.join(folder, f'{w}.xlsx')) for w in WHEELS}
    wheels = {w: {lv: wheel_clusters(tree, lv) for lv in LEVELS} for w, tree in trees.items()}
    return Wheel(formats, synonyms, wheels, folder)


def load_table(path: str | os.PathLike) -> Wheel:
    """A benchmark table: an ``emotion_wheel/`` folder, or MER2025's ``wheel_mapping.npz`` (or its JSON)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return load_wheel_folder(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such folder or file; --wheel takes AffectGPT's emotion_wheel/ "
                                f"folder or MER2025's wheel_mapping.npz")
    return load_wheel(path)
