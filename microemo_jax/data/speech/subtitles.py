"""Timed text files of a clip: subtitles (.srt/.vtt) and utterance files (TimeChat ASR format
``start<TAB>end<TAB>text``), read into ``Utterance`` spans.

Subtitle parsing is tolerant of real files (BOM, CRLF/CR, no trailing blank line, ``,`` or ``.`` before
the fraction, optional hours, optional fraction, cue numbers or identifiers, VTT cue settings and
NOTE/STYLE/REGION blocks, HTML-like tags, ASS ``{\\an8}`` overrides, entities, text after a stray blank
line, which continues the previous cue) but strict about timings: a line with ``-->`` whose
timestamps do not parse, or that ends before it starts, raises SubtitleError with the file and line.
"""
from __future__ import annotations

import html
import os
import re

import numpy as np

from microemo_jax.data.speech.spans import Utterance


class SubtitleError(ValueError):
    """A subtitle or utterance file that cannot be trusted; names the file and the 1-based line."""

    def __init__(self, where: str, line: int | None, detail: str, reason: str = 'malformed_subtitles'):
        self.path, self.line, self.reason, self.detail = where, line, reason, detail
        super().__init__(f"{where or '<subtitles>'}{'' if line is None else f':{line}'}: {detail}")



_TIME = re.compile(r'(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d+))?')
_TIMING = re.compile(r'^\s*(\S+?)\s*-->\s*(\S+)(?:\s+(.*))?$')
_TIMING_LIKE = re.compile(r'-->|^\s*\d[\d:.,]*\s*(?:-+|\u2013|\u2014)>')  # also catches '->' typos
_TAG = re.compile(r'</?[A-Za-z][^<>]*>|<\d[^<>]*>|\{\\[^{}]*\}')
_VTT_BLOCKS = ('NOTE', 'STYLE', 'REGION')


def _parse_time(s: str) -> float | None:
    m = _TIME.fullmatch(s)
    if not m:
        return None
    hours, minutes, seconds, fraction = m.groups()
    if int(minutes) >= 60 or int(seconds) >= 60:
        return None
    frac = float('0.' + fraction) if fraction else 0.0
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + frac


def _clean(lines: list[str]) -> str:
    text = ' '.join(lines)
    text = html.unescape(_TAG.sub('', text))
    return ' '.join(text.split())


def _timing(line: str, lineno: int, where: str) -> tuple[float, float]:
    m = _TIMING.match(line)
    if not m:
        raise SubtitleError(where, lineno, f"malformed cue timing {line.strip()!r} (expected "
                            f"'HH:MM:SS,mmm --> HH:MM:SS,mmm')")
    start, end = _parse_time(m.group(1)), _parse_time(m.group(2))
    for raw, value in ((m.group(1), start), (m.group(2), end)):
        if value is None:
            raise SubtitleError(where, lineno, f"malformed timestamp {raw!r} in {line.strip()!r} (expected "
                                f"[HH:]MM:SS[,mmm] with minutes and seconds below 60)")
    if end < start:
        raise SubtitleError(where, lineno, f"cue ends ({m.group(2)}) before it starts ({m.group(1)})")
    return start, end


def _is_block_keyword(s: str) -> bool:
    head = s.split(None, 1)[0] if s else ''
    return head in _VTT_BLOCKS


def _parse_cues(text: str, where: str, vtt: bool) -> list[Utterance]:
    lines = re.split(r'\r\n|\r|\n', text.lstrip('\ufeff'))  # not splitlines(): keep editors' line numbers
    n, i = len(lines), 0
    if vtt and lines and lines[0].lstrip('\ufeff').startswith('WEBVTT'):
        while i < n and lines[i].strip() and not _TIMING_LIKE.search(lines[i]):  # the header ends at a blank line
            i += 1
    cues: list[tuple[float, float, list[str]]] = []
    after_blank = True  # at the start of a block
    while i < n:
        s = lines[i].strip()
        if not s:
            after_blank, i = True, i + 1
            continue
        if _TIMING_LIKE.search(s):
            start, end = _timing(s, i + 1, where)
            cues.append((start, end, []))
            after_blank, i = False, i + 1
            continue
        next_is_timing = i + 1 < n and bool(_TIMING_LIKE.search(lines[i + 1]))
        if next_is_timing and (after_blank or not cues or s.isdigit()):  # cue number / identifier
            after_blank, i = False, i + 1
            continue
        if vtt and after_blank and _is_block_keyword(s):  # NOTE / STYLE / REGION: skip the block
            while i < n and lines[i].strip():
                i += 1
            continue
        if not cues:
            raise SubtitleError(where, i + 1, f"text {s[:60]!r} before the first cue timing line "
                                f"('start --> end'); is this a {'WebVTT' if vtt else 'SubRip'} file?")
        cues[-1][2].append(s)  # cue text; after a stray blank line it continues the previous cue
        after_blank, i = False, i + 1
    return [Utterance(start, end, _clean(body)) for start, end, body in cues]


def parse_srt(text: str, *, where: str = '') -> list[Utterance]:
    """SubRip cues in file order (text lines joined by a space, tags stripped); ``where`` names the file in errors."""
    return _parse_cues(text, where, vtt=False)


def parse_vtt(text: str, *, where: str = '') -> list[Utterance]:
    """WebVTT cues in file order; the header and NOTE/STYLE/REGION blocks are skipped, cue settings ignored."""
    return _parse_cues(text, where, vtt=True)


_BOMS = ((b'\xef\xbb\xbf', 'utf-8-sig'), (b'\xff\xfe\x00\x00', 'utf-32'), (b'\x00\x00\xfe\xff', 'utf-32'),
         (b'\xff\xfe', 'utf-16'), (b'\xfe\xff', 'utf-16'))


def _utf16_without_bom(raw: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' when ``raw`` looks like UTF-16 text without a BOM (ASCII-range text has a NUL
    in every other byte), else None."""
    sample = raw[:4096]
    if len(sample) < 4 or len(raw) % 2:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.6 * len(odd) and even.count(0) < 0.1 * len(even):
        return 'utf-16-le'
    if even.count(0) > 0.6 * len(even) and odd.count(0) < 0.1 * len(odd):
        return 'utf-16-be'
    return None


def _is_control(c: str) -> bool:
    return ord(c) < 32 and c not in '\t\n\r\f\v'  # C0 controls: never in a text file, plenty in binary data


def _binary_error(path: str, detail: str) -> SubtitleError:
    return SubtitleError(path, None, f"{detail}: not a text subtitle/utterance file (binary data?); "
                         f"save it as UTF-8 or UTF-16 text", reason='unreadable_subtitles')


def _read_text(path: str) -> str:
    """Decode a text file: a BOM (UTF-8/16/32) decides; UTF-16 without a BOM is recognised by its NUL bytes;
    else UTF-8, then cp1252, then latin-1. Binary data (NUL or other control bytes in the text, or bytes that
    are not valid in the BOM's encoding) raises SubtitleError naming the file (reason 'unreadable_subtitles')."""
    with open(path, 'rb') as f:
        raw = f.read()
    encoding = next((enc for bom, enc in _BOMS if raw.startswith(bom)), None) or _utf16_without_bom(raw)
    if encoding is not None:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as e:
            raise _binary_error(path, f"invalid {encoding.upper()} at byte {e.start} ({e.reason})") from None
    else:
        for candidate in ('utf-8', 'cp1252', 'latin-1'):
            try:
                text = raw.decode(candidate)
                break
            except UnicodeDecodeError:
                pass
    text = text.lstrip('\ufeff')
    bad = sum(1 for c in text if _is_control(c))
    if bad:
        first = next(i for i, c in enumerate(text) if _is_control(c))
        line = text.count('\n', 0, first) + 1
        raise _binary_error(path, f"{bad} control byte(s), the first on line {line}")
    return text


def read_subtitles(path: str | os.PathLike) -> list[Utterance]:
    """Timed utterances of a .srt or .vtt file (chosen by extension)."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == '.srt':
        return parse_srt(_read_text(path), where=path)
    if ext == '.vtt':
        return parse_vtt(_read_text(path), where=path)
    raise ValueError(f"{path}: unknown subtitle format {ext!r}; expected .srt or .vtt")


def read_utterance_file(path: str | os.PathLike) -> list[Utterance]:
    """TimeChat-style ASR output: one ``start<TAB>end<TAB>text`` line per utterance.

    Times are seconds (``12.5``) or timestamps (``00:00:12.500``); the text may be absent or contain tabs.
    Blank lines and a ``start end text`` header are skipped; lines without tabs are split on whitespace.
    """
    path = os.fspath(path)
    out = []
    for lineno, line in enumerate(_read_text(path).lstrip('\ufeff').splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split('\t', 2) if '\t' in line else line.split(None, 2)
        if len(fields) >= 2 and (fields[0].strip().lower(), fields[1].strip().lower()) == ('start', 'end'):
            continue
        times = [_parse_seconds(f.strip()) for f in fields[:2]]
        if len(fields) < 2 or None in times:
            raise SubtitleError(path, lineno, f"malformed utterance line {line.strip()[:80]!r} (expected "
                                f"'start<TAB>end<TAB>text' with times in seconds)", reason='malformed_utterance_file')
        if times[1] < times[0]:
            raise SubtitleError(path, lineno, f"utterance ends ({fields[1].strip()}) before it starts "
                                f"({fields[0].strip()})", reason='malformed_utterance_file')
        out.append(Utterance(times[0], times[1], _clean([fields[2]]) if len(fields) > 2 else ''))
    return out


def _parse_seconds(s: str) -> float | None:
    try:
        value = float(s)
    except ValueError:
        return _parse_time(s)
    return value if np.isfinite(value) else None
