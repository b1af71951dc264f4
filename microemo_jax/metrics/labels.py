"""Label cells as data: MER's Python-list strings, read by a small parser (never eval).

MER ships label sets as ``"['happy', 'excited']"``, sometimes unquoted (``[sad]``), and per-sample
synonym groups as ``"[['happy', 'joyful'], ['sad']]"``. The parser accepts exactly lists (nested as
deep as asked) of quoted strings or bare words, so a cell can never run code and a broken cell is
reported, not guessed at.
"""
from __future__ import annotations

import re

_QUOTES = '\'"'
_STOP = '[],'
_LOOSE_SPLIT = re.compile('[\'",]')
_BARE_BAD = re.compile(r"[\"(){}=\\]|(?<![^\W\d_])'|'(?![^\W\d_])")   # code-like; a quote not inside a word


class _Parser:
    def __init__(self, text: str):
        self.s, self.i = text, 0

    def error(self, what: str) -> ValueError:
        return ValueError(f"{what} at character {self.i + 1} of {self.s[:80]!r}")

    def skip_ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def peek(self) -> str:
        self.skip_ws()
        return self.s[self.i] if self.i < len(self.s) else ''

    def value(self, depth: int):
        c = self.peek()
        if c == '[':
            if depth == 0:
                raise self.error("unexpected nested list")
            return self.list(depth - 1)
        if depth > 0:
            raise self.error("expected '['")
        if c and c in _QUOTES:
            return self.quoted()
        return self.bare()

    def list(self, depth: int) -> list:
        self.i += 1                                  # '['
        items = []
        while True:
            c = self.peek()
            if c == ']':
                self.i += 1
                return items
            if not c:
                raise self.error("missing ']'")
            items.append(self.value(depth))
            c = self.peek()
            if c == ',':
                self.i += 1
            elif c != ']':
                raise self.error(f"expected ',' or ']' but found {c!r}" if c else "missing ']'")

    def quoted(self) -> str:
        quote, out = self.s[self.i], []
        self.i += 1
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == '\\' and self.i + 1 < len(self.s):
                out.append(self.s[self.i + 1])
                self.i += 2
            elif c == quote:
                self.i += 1
                return ''.join(out)
            else:
                out.append(c)
                self.i += 1
        raise self.error(f"unterminated string (missing {quote})")

    def bare(self) -> str:
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in _STOP:
            self.i += 1
        word = self.s[start:self.i].strip()
        if not word:
            raise self.error("empty item")
        bad = _BARE_BAD.search(word)
        if bad:
            self.i = start + self.s[start:].index(word) + bad.start()
            raise self.error(f"unexpected character {bad.group()!r} in an unquoted label")
        return word


def _parse(text: str, depth: int) -> list:
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}")
    if not text.strip():
        return []                                    # an empty cell is an empty set, as in MER
    p = _Parser(text)
    if p.peek() != '[':
        raise p.error("expected a list starting with '['")
    out = p.value(depth)
    if p.peek():
        raise p.error("unexpected text after the list")
    return out


def parse_labels(text: str) -> list[str]:
    """``"['happy', 'excited']"`` or ``[sad]`` -> ``['happy', 'excited']``; ValueError if not a flat list."""
    return _parse(text, 1)


def parse_groups(text: str) -> list[list[str]]:
    """``"[['happy', 'joyful'], ['sad']]"`` -> list of word groups; ValueError otherwise."""
    return _parse(text, 2)


def normalise(words) -> list[str]:
    """Lower-case and strip each word, dropping empty ones (MER's normalisation)."""
    if isinstance(words, str):
        raise TypeError(f"expected a list of labels, got the string {words[:60]!r}; parse it with parse_labels")
    out = []
    for w in words:
        if not isinstance(w, str):
            raise TypeError(f"labels must be strings, got {type(w).__name__} {w!r}")
        w = w.lower().strip()
        if w:
            out.append(w)
    return out


def split_list_string(text) -> list[str]:
    """A label cell as MER-UniBench's scorer splits it (AffectGPT ``string_to_list``), for exact scores.

    Lenient on purpose, unlike ``parse_labels``: one leading ``[`` and one trailing ``]`` are dropped
    (only at the very first and last character: ``" [happy]"`` gives ``"[happy"``), the rest is split
    on quotes and commas and the stripped, non-empty pieces are the labels. ``[happy excited]`` is one
    label. A list or tuple is taken as it is; None and '' are no labels.
    """
    if isinstance(text, (list, tuple)):
        return list(text)
    if text is None:
        return []
    if not isinstance(text, str):
        raise TypeError(f"expected a label string, got {type(text).__name__} {text!r}")
    if text[:1] == '[':
        text = text[1:]
    if text[-1:] == ']':
        text = text[:-1]
    return [piece.strip() for piece in _LOOSE_SPLIT.split(text) if piece.strip()]
