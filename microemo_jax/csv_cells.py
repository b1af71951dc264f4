"""One CSV cell, escaped against formula injection when we write it and restored when we read it.

A spreadsheet (Excel, LibreOffice, Google Sheets) opening a CSV runs a cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return as a formula. Names and texts in our CSVs come from corpora and
model output, so OWASP's CSV-injection guidance applies: such a cell gets a leading single quote, which
spreadsheets read as "this is text" and do not show. Our own readers remove it again, so real names round-trip
(MOSEI ids can start with ``-``). A cell that itself starts with a quote gets one more, so that every string
comes back exactly: ``unescape_cell(escape_cell(s)) == s``. Every CSV the package writes goes through
``escape_row``, and every CSV it reads (its own, or a corpus's label file) through ``unescape_cell``.
"""
from __future__ import annotations

from collections.abc import Iterable

FORMULA_STARTS = ('=', '+', '-', '@', '\t', '\r')
QUOTE = "'"


def escape_cell(value):
    """``value`` with a leading quote when a spreadsheet would read it as a formula (or it starts with a quote);
    anything that is not a string (a number we wrote ourselves) is left as it is."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS + (QUOTE,):
        return QUOTE + value
    return value


def unescape_cell(cell: str) -> str:
    """The string ``escape_cell`` was given: one leading quote removed where ``escape_cell`` added it."""
    if cell[:1] == QUOTE and cell[1:2] and cell[1:2] in FORMULA_STARTS + (QUOTE,):
        return cell[1:]
    return cell


def escape_row(row: Iterable) -> list:
    return [escape_cell(v) for v in row]


def unescape_row(row: Iterable[str]) -> list[str]:
    return [unescape_cell(c) for c in row]
