"""The label files of the raw layouts, read as data: csv rows (UTF-8, BOM or not; malformed rows become
``Skip``s naming file and line), OV label sets (``parse_openset``: literals, never ``eval``), description
and OV label rows, the subtitle table ``subtitle_chieng.csv``, and official split files.

An empty OV cell or ``[]`` in the MER label files means ``['neutral']``, as MER2025's loaders do.
"""
from __future__ import annotations

import ast
import csv
import dataclasses
import os
import re

from microemo_jax.csv_cells import unescape_row
from microemo_jax.data.raw.files import Skip, name_key
from microemo_jax.table_keys import checked_header

_MAX_OPENSET_CHARS = 10_000
SUBTITLE_NOT_USED = ' (its subtitle is not used)'
ROW_REJECTIONS = ('malformed_row', 'empty_label')  # Skip codes of a label row that was read but refused


def rejected_rows(skips: list[Skip]) -> set[str]:
    """Name keys of the label rows refused so far (a malformed or empty label; not a subtitle row): their videos
    must not turn into answer-less clips as if they had no row."""
    return {name_key(s.name) for s in skips
            if s.reason.split(':', 1)[0] in ROW_REJECTIONS and not s.reason.endswith(SUBTITLE_NOT_USED)}


# ---------------------------------------------------------------------------------------------- openset
_LABEL_OK = re.compile(r"^[\w\s\-'’/&]+$")


def _check_label(label: str) -> str:
    label = ' '.join(label.split())
    if not _LABEL_OK.match(label) or '_' in label:
        raise ValueError(f'{label!r} is not an emotion label (letters, digits, spaces, - \' / & only)')
    return label


def parse_openset(text: str) -> list[str]:
    """Parse an OV label cell as data: "['happy', 'excited']", "('a',)" or "happy, sad".

    Literals go through ``ast.literal_eval`` (never ``eval``) and must be a list/tuple of str; every label
    must look like a label (letters, digits, spaces, - ' / &), so code-like strings are rejected. Exact
    duplicates are dropped; an empty set gives ['neutral'] (MER2025's loaders). Raises ValueError.
    """
    s = str(text).strip()
    if len(s) > _MAX_OPENSET_CHARS:
        raise ValueError(f'openset is {len(s)} characters long (limit {_MAX_OPENSET_CHARS})')
    if s[:1] in ('[', '(', '"', "'", '{'):
        try:
            value = ast.literal_eval(s)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
            raise ValueError(f'openset {s[:80]!r} is not a Python list literal ({type(e).__name__})') from None
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f'openset {s[:80]!r} is not a list of strings')
        items = list(value)
    else:
        items = s.split(',')
    labels = []
    for item in items:
        if item.strip():
            label = _check_label(item)
            if label not in labels:
                labels.append(label)
    return labels or ['neutral']


# ---------------------------------------------------------------------------------------------- csv
def require(raw_dir: str, name: str) -> str:
    path = os.path.join(raw_dir, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: this layout needs {name} in {raw_dir}")
    return path


def read_csv(path: str, required: tuple[str, ...]):
    """(header, rows as (line, name, {column: cell}), Skips of malformed rows) of a UTF-8 (BOM or not) csv.

    The first required column is the name column.
    """
    base = os.path.basename(path)
    try:
        with open(path, encoding='utf-8-sig', newline='') as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{path} is empty: expected a header with columns {', '.join(required)}")
            header = checked_header(path, header)  # a column named twice: refused, naming it
            missing = [c for c in required if c not in header]
            if missing:
                raise ValueError(f"{path} lacks column(s) {', '.join(missing)} (header: {header}); expected "
                                 f"{', '.join(required)}")
            rows, skips = [], []
            for cells in reader:
                cells, line = unescape_row(cells), reader.line_num   # what our writers escaped (csv_cells)
                if not cells or all(not c.strip() for c in cells):
                    continue                       # blank line: no data
                name = cells[header.index(required[0])].strip() if len(cells) > header.index(required[0]) else ''
                if len(cells) != len(header):
                    skips.append(Skip(name or f'{base}:{line}', f'malformed_row: {base} line {line}: {len(cells)} '
                                                                 f'columns, header has {len(header)}'))
                    continue
                if not name:
                    skips.append(Skip(f'{base}:{line}', f'malformed_row: {base} line {line}: empty name'))
                    continue
                rows.append((line, name, dict(zip(header, cells))))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 ({e}): re-save it as UTF-8") from None
    except csv.Error as e:
        raise ValueError(f"{path} is not a readable csv: {e}") from None
    return header, rows, skips


def read_subtitles(raw_dir: str, *, required: bool = False) -> tuple[dict[str, str], list[Skip]]:
    """name -> english subtitle from subtitle_chieng.csv (MER2023/2024/2025), if the file is there."""
    path = os.path.join(raw_dir, 'subtitle_chieng.csv')
    if not os.path.isfile(path):
        if required:
            require(raw_dir, 'subtitle_chieng.csv')
        return {}, []
    _, rows, skips = read_csv(path, ('name', 'english'))
    for s in skips:
        s.reason += SUBTITLE_NOT_USED
    out: dict[str, str] = {}
    for line, name, row in rows:
        if name_key(name) in out:
            skips.append(Skip(name, f'duplicate_name: subtitle_chieng.csv line {line} repeats {name!r}; the first '
                                    f'subtitle is used'))
            continue
        out[name_key(name)] = row['english'].strip()
    return out, skips


@dataclasses.dataclass
class Label:
    name: str
    where: str                # 'file line N'
    reason: str | None = None
    openset: list[str] | None = None
    emotion: str | None = None
    subtitle: str | None = None


def dedupe(labels: list[Label], skips: list[Skip]) -> list[Label]:
    first: dict[str, str] = {}
    out = []
    for label in labels:
        if name_key(label.name) in first:
            skips.append(Skip(label.name, f'duplicate_name: {label.where} repeats {label.name!r} from '
                                          f'{first[name_key(label.name)]}; the first row is used'))
            continue
        first[name_key(label.name)] = label.where
        out.append(label)
    return out


def text_labels(path: str, columns: tuple[str, ...], target: str, skips: list[Skip], **extra) -> list[Label]:
    """Rows whose target column is free text (a description); empty target -> skipped."""
    base = os.path.basename(path)
    _, rows, bad = read_csv(path, columns)
    skips.extend(bad)
    labels = []
    for line, name, row in rows:
        text = row[target].strip()
        if not text:
            skips.append(Skip(name, f'empty_label: {base} line {line}: column {target!r} is empty'))
            continue
        labels.append(Label(name, f'{base} line {line}', reason=text,
                             **{k: row[col].strip() for k, col in extra.items()}))
    return labels


def ov_labels(path: str, skips: list[Skip]) -> list[Label]:
    """Rows of a MER openset file (an empty cell means ['neutral']); unparsable sets -> skipped."""
    base = os.path.basename(path)
    _, rows, bad = read_csv(path, ('name', 'openset'))
    skips.extend(bad)
    labels = []
    for line, name, row in rows:
        try:
            openset = parse_openset(row['openset'])
        except ValueError as e:
            skips.append(Skip(name, f'malformed_row: {base} line {line}: {e}'))
            continue
        labels.append(Label(name, f'{base} line {line}', openset=openset))
    return labels


# ---------------------------------------------------------------------------------------------- splits
SPLIT_NAMES = ('train', 'validation', 'test')


def read_split_file(path: str) -> dict[str, tuple[str, str]]:
    """An official split, ``name,split`` rows (split one of train/validation/test) -> {NFC video name: (split,
    'FILE line N')}. A name may be a video or one of its targets (``NAME#ov`` counts for ``NAME``). Raises
    ValueError naming the file and line for an unknown split, a malformed row, or one video given two splits."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--split-file {path} does not exist")
    base = os.path.basename(path)
    _, rows, bad = read_csv(path, ('name', 'split'))
    if bad:
        raise ValueError(f"--split-file {path}: {bad[0].reason.split(': ', 1)[-1]}")
    out: dict[str, tuple[str, str]] = {}
    for line, name, row in rows:
        split = row['split'].strip().lower()
        if split not in SPLIT_NAMES:
            raise ValueError(f"--split-file {path} line {line}: split {row['split']!r} for {name!r} is not one of "
                             f"{', '.join(SPLIT_NAMES)}")
        video = name_key(name.split('#', 1)[0])
        where = f'{base} line {line}'
        if video in out and out[video][0] != split:
            raise ValueError(f"--split-file {path}: {name!r} is {split} on line {line} but {out[video][0]} on "
                             f"{out[video][1]} (a video's records must share one split)")
        out.setdefault(video, (split, where))
    return out


def video_key(name: str) -> str:
    """The lookup key of the video a clip name belongs to (its name before '#', NFC)."""
    return name_key(name.split('#', 1)[0])
