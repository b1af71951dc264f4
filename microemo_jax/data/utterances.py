"""Utterance spans of a clip: timed subtitles > utterance file > ASR on voiced spans > voice activity > the whole clip.

The utterance-aware video/audio Q-Formers pool one slot per span, so spans must be in the clip's seconds,
non-empty, sorted and at most ``max_utterances`` many. Rules of ``find_utterances``:

1. Sources are tried in order, and the first that yields a span inside the clip is the clip's
   ``utterance_source`` (one of ``SOURCES``): ``subtitles`` (timed .srt/.vtt), ``utterance_file`` (a
   provided transcript, TimeChat ASR format ``start<TAB>end<TAB>text``), ``asr-whisper`` /
   ``asr-pocketsphinx`` (speech recognition on the voiced spans, ``data/speech.py``; only spans with words),
   ``vad`` (the voiced spans without text: Silero VAD, or the energy detector below when Silero is
   unavailable), ``whole`` (``[0, duration]``). A given file that is missing or malformed raises
   (FileNotFoundError / SubtitleError): a broken annotation is reported, never silently replaced by a
   weaker source. Music, noise and silence have no voiced span, so they never get ASR text.
2. Spans are sorted by (start, end) and clipped to ``[0, duration]``. A span that ends up empty is
   dropped; if it was a zero-length cue inside the clip with text, its text joins the nearest kept span
   (in time order) so no spoken words are lost. Cues wholly outside the clip are dropped with their text
   (that speech is not in the clip). Overlapping spans are kept as they are.
3. While there are more than ``max_utterances`` spans, the two neighbours with the smallest gap (most
   overlapping first; the earliest pair on ties) are merged into one span from the first start to the
   last end whose text is both texts joined by a space.

Subtitle parsing is tolerant of real files (BOM, CRLF/CR, no trailing blank line, ``,`` or ``.`` before
the fraction, optional hours, optional fraction, cue numbers or identifiers, VTT cue settings and
NOTE/STYLE/REGION blocks, HTML-like tags, ASS ``{\\an8}`` overrides, entities, text after a stray blank
line, which continues the previous cue) but strict about timings: a line with ``-->`` whose
timestamps do not parse, or that ends before it starts, raises SubtitleError with the file and line.
"""
from __future__ import annotations

import dataclasses
import html
import os
import re

import numpy as np

SOURCES = ('subtitles', 'utterance_file', 'asr-whisper', 'asr-pocketsphinx', 'vad', 'whole')


@dataclasses.dataclass(frozen=True)
class Utterance:
    start: float  # seconds from the clip start
    end: float
    text: str


class SubtitleError(ValueError):
    """A subtitle or utterance file that cannot be trusted; names the file and the 1-based line."""

    def __init__(self, where: str, line: int | None, detail: str, reason: str = 'malformed_subtitles'):
        self.path, self.line, self.reason, self.detail = where, line, reason, detail
        super().__init__(f"{where or '<subtitles>'}{'' if line is None else f':{line}'}: {detail}")


# ----------------------------------------------------------------------------------------------- parsing

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


# ---------------------------------------------------------------------------------- voice activity

def detect_voice_activity(waveform: np.ndarray, sample_rate: int = 16000, *, frame_ms: int = 30,
                          min_speech_ms: int = 250, min_silence_ms: int = 300) -> list[Utterance]:
    """Speech-like stretches of a mono waveform by frame energy (text='').

    Energy of non-overlapping ``frame_ms`` frames in dB full scale; the noise floor is their 10th
    percentile. A stretch starts at a frame >= max(floor + 10 dB, -55 dBFS) and lasts while frames stay
    >= that threshold - 5 dB (hysteresis, so syllable dips do not split it). Stretches separated by less
    than ``min_silence_ms`` are merged, then those shorter than ``min_speech_ms`` are dropped. Stationary
    noise never rises 10 dB above its own 10th percentile, so it yields nothing; loud non-speech
    events (music, door slams) are found too: this is an energy detector, not a speech classifier.
    """
    x = np.asarray(waveform, np.float64).reshape(-1)
    frame = max(1, round(sample_rate * frame_ms / 1000))
    if len(x) < frame:
        return []
    starts = np.arange(0, len(x), frame)
    counts = np.minimum(frame, len(x) - starts)
    energy = np.add.reduceat(x * x, starts) / counts
    db = 10.0 * np.log10(energy + 1e-12)
    floor = float(np.percentile(db, 10))
    on = max(floor + 10.0, -55.0)
    off = on - 5.0

    segments: list[list[int]] = []  # [first frame, end frame (exclusive)]
    active = False
    for i, level in enumerate(db):
        if not active and level >= on:
            active = True
            segments.append([i, i + 1])
        elif active and level >= off:
            segments[-1][1] = i + 1
        elif active:
            active = False

    min_gap = min_silence_ms / frame_ms
    merged: list[list[int]] = []
    for seg in segments:
        if merged and seg[0] - merged[-1][1] < min_gap:
            merged[-1][1] = seg[1]
        else:
            merged.append(seg)
    min_len = min_speech_ms / frame_ms
    return [Utterance(a * frame / sample_rate, min(b * frame, len(x)) / sample_rate, '')
            for a, b in merged if b - a >= min_len]


# ------------------------------------------------------------------------------------------ choosing

def _join(a: str, b: str) -> str:
    return ' '.join(t for t in (a, b) if t)


def _clip(utterances: list[Utterance], duration: float) -> list[Utterance]:
    """Rule 2: sort, clip to [0, duration], drop empty spans (re-homing the text of in-clip points)."""
    kept: list[Utterance] = []
    points: list[tuple[float, str]] = []
    for u in sorted(utterances, key=lambda u: (u.start, u.end)):
        start, end = max(0.0, float(u.start)), min(float(duration), float(u.end))
        if end > start:
            kept.append(Utterance(start, end, u.text))
        elif u.text and 0.0 <= u.start <= duration:
            points.append((float(u.start), u.text))
    for t, text in points:
        if not kept:
            break
        j = min(range(len(kept)), key=lambda k: max(kept[k].start - t, t - kept[k].end, 0.0))
        u = kept[j]
        kept[j] = Utterance(u.start, u.end, _join(text, u.text) if t <= u.start else _join(u.text, text))
    return kept


def merge_closest(utterances: list[Utterance], max_utterances: int) -> list[Utterance]:
    """Rule 3: merge the closest neighbours (smallest gap, overlaps first) until at most ``max_utterances`` remain."""
    if max_utterances < 1:
        raise ValueError(f"max_utterances must be >= 1, got {max_utterances}")
    out = sorted(utterances, key=lambda u: (u.start, u.end))
    while len(out) > max_utterances:
        gaps = [out[k + 1].start - out[k].end for k in range(len(out) - 1)]
        k = int(np.argmin(gaps))
        a, b = out[k], out[k + 1]
        out[k:k + 2] = [Utterance(a.start, max(a.end, b.end), _join(a.text, b.text))]
    return out


def find_utterances(duration: float, *, subtitle_path: str | os.PathLike | None = None,
                    utterance_path: str | os.PathLike | None = None, waveform: np.ndarray | None = None,
                    sample_rate: int = 16000, max_utterances: int | None = None, vad: str = 'silero',
                    asr=None) -> tuple[list[Utterance], str]:
    """Spans of a clip of ``duration`` seconds and the source used (one of ``SOURCES``); see the module rules.

    ``vad``: 'silero' (falls back to 'energy' when unavailable) or 'energy'. ``asr``: a recognizer of
    ``data.speech.make_asr`` (``(waveform, spans) -> utterances``, with a ``source`` attribute) or None."""
    if not np.isfinite(duration) or duration <= 0:
        raise ValueError(f"find_utterances: clip duration must be a positive number of seconds, got {duration}")
    candidates = []
    if subtitle_path is not None:
        candidates.append(('subtitles', lambda: read_subtitles(_existing(subtitle_path, 'subtitle'))))
    if utterance_path is not None:
        candidates.append(('utterance_file', lambda: read_utterance_file(_existing(utterance_path, 'utterance'))))
    if waveform is not None and len(waveform):
        voiced = []

        def detect():
            from microemo_jax.data.speech import detect_speech  # speech imports this module
            if not voiced:
                voiced.append(_clip(detect_speech(waveform, sample_rate, detector=vad)[0], duration))
            return voiced[0]

        if asr is not None:
            candidates.append((asr.source, lambda: [u for u in asr(waveform, detect()) if u.text] if detect() else []))
        candidates.append(('vad', detect))
    candidates.append(('whole', lambda: [Utterance(0.0, float(duration), '')]))
    for source, read in candidates:
        spans = _clip(read(), duration)
        if spans:
            return (merge_closest(spans, max_utterances) if max_utterances is not None else spans), source
    raise AssertionError('unreachable: the whole clip is always a span')


def _existing(path, what: str) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: {what} file not found (pass None when the clip has none)")
    return path
