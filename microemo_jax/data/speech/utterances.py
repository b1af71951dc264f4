"""Utterance spans of a clip: timed subtitles > utterance file > ASR on voiced spans > voice activity > the whole clip.

The utterance-aware video/audio Q-Formers pool one slot per span, so spans must be in the clip's seconds,
non-empty, sorted and at most ``max_utterances`` many. Rules of ``find_utterances``:

1. Sources are tried in order, and the first that yields a span inside the clip is the clip's
   ``utterance_source`` (one of ``SOURCES``): ``subtitles`` (timed .srt/.vtt), ``utterance_file`` (a
   provided transcript, TimeChat ASR format ``start<TAB>end<TAB>text``), ``asr-whisper`` /
   ``asr-pocketsphinx`` (speech recognition on the voiced spans, ``data/speech/``; only spans with words),
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

Timed text files are read by ``subtitles.py``, voice activity by ``vad.py``, recognition by ``asr.py``.
"""
from __future__ import annotations

import os

import numpy as np

from microemo_jax.data.speech.spans import Utterance
from microemo_jax.data.speech.subtitles import read_subtitles, read_utterance_file
from microemo_jax.data.speech.vad import detect_speech

SOURCES = ('subtitles', 'utterance_file', 'asr-whisper', 'asr-pocketsphinx', 'vad', 'whole')


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
    ``data.speech.asr.make_asr`` (``(waveform, spans) -> utterances``, with a ``source`` attribute) or None."""
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
