"""Groups of clips for scoring subsets: a CSV ``name, group[, more grouping columns]``.

``evaluate --groups FILE`` scores every group of every grouping column apart (the demo corpus writes
``groups.csv`` with its scenario in ``group`` and ``micro``/``other`` in ``micro``). Names are the
per-sample names (videos). A clip the file does not name goes to the group ``(none)``; a name the file
lists that the evaluated split lacks is counted and reported, not dropped silently. The file is read as
data (``csv``), and any fault in it is one ``GroupsError`` line naming the file, the row and the fix.
"""
from __future__ import annotations

import csv
import dataclasses

from microemo_jax.csv_cells import unescape_cell
from microemo_jax.table_keys import checked_header

NO_GROUP = '(none)'
REQUIRED = ('name', 'group')


class GroupsError(ValueError):
    """The groups file cannot be used; the message names the file, the fault and what to do."""


@dataclasses.dataclass(frozen=True)
class GroupTable:
    """``columns``: the grouping columns (``group`` first); ``by_name``: name -> {column: group}."""
    path: str
    columns: tuple[str, ...]
    by_name: dict[str, dict[str, str]]

    def assign(self, names, column: str = 'group') -> dict[str, list[str]]:
        """group -> the given names in it (in their order), ``(none)`` for names the file does not list;
        groups sorted by name, ``(none)`` last."""
        out: dict[str, list[str]] = {}
        for name in names:
            out.setdefault(self.by_name.get(name, {}).get(column, NO_GROUP), []).append(name)
        return {g: out[g] for g in sorted(out, key=lambda g: (g == NO_GROUP, g))}

    def not_in(self, names) -> list[str]:
        """The names the file lists that ``names`` lacks, sorted."""
        have = set(names)
        return sorted(n for n in self.by_name if n not in have)


def read_groups(path: str) -> GroupTable:
    """Read and check a groups CSV (UTF-8, a header row with ``name`` and ``group``)."""
    try:
        with open(path, newline='', encoding='utf-8-sig') as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise GroupsError(f"--groups {path}: no such file") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise GroupsError(f"--groups {path}: not a readable UTF-8 CSV ({e})") from None
    if not rows:
        raise GroupsError(f"--groups {path}: the file is empty; it needs a header row 'name,group' and one row per "
                          f"clip")
    header = [h.strip() for h in rows[0]]
    try:
        checked_header(path, header)           # the one header check of every table we read
    except ValueError as e:
        raise GroupsError(f"--groups {e}") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise GroupsError(f"--groups {path}: no column(s) {missing} in the header {header}; the file needs "
                          f"'name,group' (more grouping columns may follow)")
    if any(not h for h in header):
        raise GroupsError(f"--groups {path}: the header {header} has an empty column name")
    columns = ('group',) + tuple(h for h in header if h not in REQUIRED)
    where = {c: header.index(c) for c in ('name',) + columns}
    by_name: dict[str, dict[str, str]] = {}
    first_row: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue                                   # a blank line
        if len(row) != len(header):
            raise GroupsError(f"--groups {path}: row {line} has {len(row)} fields, the header {len(header)}")
        cells = {c: unescape_cell(row[i].strip()) for c, i in where.items()}   # as csv_cells wrote them
        name = cells.pop('name')
        if not name:
            raise GroupsError(f"--groups {path}: row {line} has an empty name")
        if name in by_name:
            raise GroupsError(f"--groups {path}: {name!r} is listed twice (rows {first_row[name]} and {line}); "
                              f"give each clip one row")
        empty = [c for c, v in cells.items() if not v]
        if empty:
            raise GroupsError(f"--groups {path}: row {line} ({name!r}) has no value in column(s) {empty}")
        by_name[name], first_row[name] = cells, line
    return GroupTable(path, columns, by_name)
