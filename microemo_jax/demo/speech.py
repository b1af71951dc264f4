"""Speech for the demo corpus: espeak-ng when it is installed, otherwise a synthetic voice-like signal.

Both carry the prosody emotion the way listeners and the audio branch hear it: pitch level and movement,
speaking rate, loudness and voice quality. espeak-ng (``-v en-us+f3``) gets per-emotion pitch, speed,
amplitude and word gap. The fallback is a small source-filter synthesiser: a band-limited glottal pulse
train following a pitch contour (declination, accents on stressed syllables, a final rise for questions
and surprise, tremolo for fear), breath noise, noise bursts for consonants, and formant envelopes of the
vowels in the text applied in the STFT domain; syllable count and vowels come from the words, so the
signal has the rhythm of the sentence. Both are deterministic for a given text, emotion and seed.

    audio = speak("I'm totally fine with it.", 'neutral', rng)    # float32 mono at SAMPLE_RATE
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
import wave

import numpy as np

SAMPLE_RATE = 16000


@dataclasses.dataclass(frozen=True)
class Prosody:
    pitch_hz: float      # mean f0
    accent_st: float     # pitch accent on stressed syllables, semitones
    decline_st: float    # declination over an utterance, semitones
    rate: float          # syllables per second
    gain: float          # peak amplitude
    tilt: float          # spectral tilt (higher = darker, softer voice)
    breath: float        # aspiration noise relative to the voice
    tremolo_hz: float    # pitch/amplitude tremolo (fear)
    final_rise_st: float  # rise on the last syllable (surprise)
    espeak: tuple[int, int, int, int]   # espeak-ng pitch (0-99), speed (wpm), amplitude (0-200), word gap (10 ms)


PROSODY = {
    'neutral': Prosody(195, 1.5, 2.0, 4.3, 0.30, 1.0, 0.02, 0.0, 0.0, (45, 160, 90, 1)),
    'happy': Prosody(245, 4.5, 1.0, 5.0, 0.45, 0.75, 0.02, 0.0, 0.0, (75, 185, 130, 0)),
    'sad': Prosody(168, 0.7, 2.5, 3.0, 0.16, 1.5, 0.12, 0.0, 0.0, (25, 115, 55, 4)),
    'angry': Prosody(225, 4.0, 0.5, 5.4, 0.75, 0.55, 0.02, 0.0, 0.0, (55, 205, 190, 0)),
    'surprised': Prosody(265, 5.0, 0.0, 4.6, 0.50, 0.8, 0.02, 0.0, 5.0, (85, 170, 140, 1)),
    'fearful': Prosody(255, 1.5, 0.5, 5.7, 0.30, 1.1, 0.10, 7.0, 0.0, (80, 215, 85, 0)),
    'disgusted': Prosody(172, 2.5, 3.5, 3.3, 0.35, 0.9, 0.05, 0.0, 0.0, (30, 130, 110, 3)),
}

# Female vowel formants (F1, F2, F3 Hz) for the vowel letters of a syllable.
_VOWELS = {'a': (850, 1650, 2800), 'e': (600, 2200, 2950), 'i': (380, 2650, 3250), 'o': (600, 1000, 2800),
           'u': (420, 1250, 2700), 'y': (380, 2550, 3200), '@': (650, 1450, 2800)}
_FRICATIVES = set('scfhzxjkpt')
_WORD = re.compile(r"[A-Za-z']+|[,.;:!?]")


def espeak_available() -> str | None:
    """Path of espeak-ng when installed, else None (the corpus then uses the synthetic voice)."""
    return shutil.which('espeak-ng')


def espeak_version(exe: str) -> str:
    out = subprocess.run([exe, '--version'], capture_output=True, text=True, timeout=30)
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else 'espeak-ng'


def speak(text: str, emotion: str, rng: np.random.Generator, engine: str = 'synthetic',
          max_seconds: float | None = None) -> np.ndarray:
    """Float32 mono speech at ``SAMPLE_RATE`` for ``text`` with the prosody of ``emotion``, silence trimmed.

    ``engine`` is 'synthetic' or a path to espeak-ng. ``max_seconds`` speeds the voice up (once) when the
    utterance would be longer.
    """
    if emotion not in PROSODY:
        raise ValueError(f"unknown prosody emotion {emotion!r}; known: {', '.join(PROSODY)}")
    speed = 1.0
    for _ in range(2):
        if engine == 'synthetic':
            audio = synth_voice(text, emotion, np.random.default_rng(rng.integers(2 ** 63)), speed)
        else:
            audio = espeak_voice(text, emotion, engine, speed)
        if max_seconds is None or len(audio) <= max_seconds * SAMPLE_RATE:
            break
        speed = 1.05 * len(audio) / (max_seconds * SAMPLE_RATE)
    if max_seconds is not None and len(audio) > max_seconds * SAMPLE_RATE:
        audio = audio[:int(max_seconds * SAMPLE_RATE)] * _fade(int(max_seconds * SAMPLE_RATE), int(0.03 * SAMPLE_RATE))
    return audio.astype(np.float32)


# -------------------------------------------------------------------------------------------- espeak-ng
def espeak_voice(text: str, emotion: str, exe: str, speed: float = 1.0) -> np.ndarray:
    """Run espeak-ng (female US voice) with per-emotion pitch/speed/amplitude; resample to SAMPLE_RATE."""
    pitch, wpm, amp, gap = PROSODY[emotion].espeak
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, 'speech.wav')
        cmd = [exe, '-v', 'en-us+f3', '-p', str(pitch), '-s', str(int(round(wpm * speed))), '-a', str(amp),
               '-g', str(gap), '-w', wav, text]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if run.returncode != 0 or not os.path.exists(wav):
            raise RuntimeError(f"espeak-ng failed ({' '.join(cmd)}): exit {run.returncode}: {run.stderr.strip()}")
        with wave.open(wav, 'rb') as w:
            sr, n, width, ch = w.getframerate(), w.getnframes(), w.getsampwidth(), w.getnchannels()
            raw = w.readframes(n)
    if width != 2:
        raise RuntimeError(f"espeak-ng wrote {8 * width}-bit audio; expected 16-bit PCM")
    x = np.frombuffer(raw, '<i2').astype(np.float32).reshape(-1, ch).mean(1) / 32768.0
    return _trim(resample(x, sr, SAMPLE_RATE))


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling by FFT (the signal is padded with silence, so wrap-around is harmless)."""
    if sr_in == sr_out or len(x) == 0:
        return x.astype(np.float32)
    n_out = int(round(len(x) * sr_out / sr_in))
    pad = int(0.05 * sr_in)
    xp = np.pad(x, (pad, pad))
    n_pad_out = int(round(len(xp) * sr_out / sr_in))
    spec = np.fft.rfft(xp)
    keep = n_pad_out // 2 + 1
    spec = spec[:keep] if keep <= len(spec) else np.pad(spec, (0, keep - len(spec)))
    y = np.fft.irfft(spec, n_pad_out) * (n_pad_out / len(xp))
    start = int(round(pad * sr_out / sr_in))
    return y[start:start + n_out].astype(np.float32)


def _trim(x, threshold=0.01):
    loud = np.flatnonzero(np.abs(x) > threshold * max(np.abs(x).max(), 1e-6))
    if len(loud) == 0:
        return x[:0]
    margin = int(0.02 * SAMPLE_RATE)
    return x[max(loud[0] - margin, 0):loud[-1] + margin]


# -------------------------------------------------------------------------------------------- synthetic
def syllables(text: str) -> list[tuple[str, bool, bool]]:
    """(vowel key, starts with a voiceless consonant, is followed by a pause) per syllable of ``text``."""
    out = []
    for tok in _WORD.findall(text.lower()):
        if tok in ',.;:!?':
            if out:
                out[-1] = (out[-1][0], out[-1][1], True)
            continue
        word = tok.replace("'", '')
        groups = list(re.finditer(r'[aeiouy]+', word))
        if len(groups) > 1 and word.endswith('e') and groups[-1].group() == 'e' and groups[-1].start() == len(word) - 1:
            groups = groups[:-1]                                   # silent final e
        if not groups:
            groups = [None]
        prev_end = 0
        for g in groups:
            onset = word[prev_end:g.start()] if g is not None else word
            vowel = g.group()[0] if g is not None else '@'
            out.append((vowel if vowel in _VOWELS else '@', bool(onset) and onset[-1] in _FRICATIVES, False))
            prev_end = g.end() if g is not None else len(word)
    return out or [('@', False, False)]


def synth_voice(text: str, emotion: str, rng: np.random.Generator, speed: float = 1.0) -> np.ndarray:
    """Source-filter speech-like signal for ``text`` with the prosody of ``emotion`` (see module doc)."""
    pro = PROSODY[emotion]
    sr = SAMPLE_RATE
    syl = syllables(text)
    n_syl = len(syl)
    question = text.strip().endswith('?')
    # --- timing: syllable durations with stress and jitter; pauses at punctuation
    stress = np.zeros(n_syl, bool)
    stress[rng.integers(0, 2)::2] = True
    stress[-1] = True
    dur = (1.0 / (pro.rate * speed)) * rng.uniform(0.8, 1.2, n_syl) * np.where(stress, 1.2, 0.85)
    dur[-1] *= 1.35                                               # phrase-final lengthening
    gaps = np.array([0.14 / speed if s[2] and i < n_syl - 1 else 0.0 for i, s in enumerate(syl)])
    starts = np.concatenate([[0.0], np.cumsum(dur + gaps)[:-1]])
    total = float(starts[-1] + dur[-1]) + 0.03
    n = int(total * sr)
    t = np.arange(n) / sr
    # --- pitch contour in semitones around pro.pitch_hz
    st = -pro.decline_st * (t / total - 0.5)
    centres = starts + dur * 0.45
    for i in np.flatnonzero(stress):
        st += pro.accent_st * rng.uniform(0.6, 1.1) * np.exp(-0.5 * ((t - centres[i]) / (0.4 * dur[i])) ** 2)
    rise = pro.final_rise_st + (3.0 if question else 0.0)
    if rise:
        st += rise * np.clip((t - starts[-1]) / dur[-1], 0, 1) ** 1.5
    if pro.tremolo_hz:
        st += 0.6 * np.sin(2 * np.pi * pro.tremolo_hz * t + rng.uniform(0, 2 * np.pi))
    drift = np.cumsum(rng.normal(0, 1, n // 160 + 2))[: n // 160 + 2]
    st += 0.25 * np.interp(t, np.arange(len(drift)) * 0.01, drift - drift.mean()) / max(np.abs(drift).max(), 1.0)
    f0 = pro.pitch_hz * 2.0 ** (st / 12.0)
    # --- band-limited pulse train (sum of K cosine harmonics in closed form) + breath
    k = int(7000 // f0.max())
    phase = np.cumsum(f0 / sr)
    s = np.sin(np.pi * phase)
    with np.errstate(divide='ignore', invalid='ignore'):
        pulses = np.where(np.abs(s) < 1e-6, float(k), (np.sin((2 * k + 1) * np.pi * phase) / (2 * s) - 0.5))
    voice = pulses / k + pro.breath * rng.normal(0, 1, n) * 0.25
    # --- amplitude: voiced envelope per syllable; voiceless onsets as noise bursts
    env = np.zeros(n)
    burst = np.zeros(n)
    for i, (_, voiceless, _) in enumerate(syl):
        a, b = int(starts[i] * sr), int((starts[i] + dur[i]) * sr)
        seg = b - a
        on = int(min(0.35 * seg, (0.05 if voiceless else 0.015) * sr))
        shape = np.ones(seg)
        if voiceless:
            shape[:on] = 0.0
            burst[a:a + on] = np.hanning(2 * on)[:on] ** 0.5 * (1.0 if stress[i] else 0.7)
        ramp = max(int(0.02 * sr), 1)
        shape[on:on + ramp] *= np.linspace(0, 1, min(ramp, max(seg - on, 0)))
        tail = max(int(0.3 * seg), 1)
        shape[-tail:] *= np.linspace(1, 0.15, tail)
        env[a:b] = shape * (1.0 if stress[i] else 0.75)
    if pro.tremolo_hz:
        env *= 1.0 + 0.25 * np.sin(2 * np.pi * pro.tremolo_hz * t)
    voice *= env
    noise = rng.normal(0, 1, n) * burst * 0.06
    # --- filter in the STFT domain: vowel formants for the voice, a high band for the bursts
    out = _formant_filter(voice, noise, syl, starts, dur, pro.tilt, sr)
    out *= _fade(len(out), int(0.01 * sr))
    # loudness: the RMS of the louder half of 20 ms frames is set by the emotion (then a soft limiter)
    m = len(out) // 320 * 320
    frame_rms = np.sqrt((out[:m].reshape(-1, 320) ** 2).mean(1))
    level = np.sqrt(np.mean(np.sort(frame_rms)[len(frame_rms) // 2:] ** 2)) if len(frame_rms) else 0.0
    out = out * (0.3 * pro.gain / level if level > 0 else 0.0)
    return np.tanh(out).astype(np.float32)


def _formant_filter(voice, noise, syl, starts, dur, tilt, sr, nfft=512, hop=128):
    n = len(voice)
    pad = nfft
    v = np.pad(voice, (pad, pad + nfft))
    z = np.pad(noise, (pad, pad + nfft))
    n_frames = (n + pad) // hop + 1
    idx = np.arange(n_frames)[:, None] * hop + np.arange(nfft)[None, :]
    win = np.hanning(nfft + 1)[:-1]
    V = np.fft.rfft(v[idx] * win, axis=1)
    Z = np.fft.rfft(z[idx] * win, axis=1)
    freqs = np.fft.rfftfreq(nfft, 1 / sr)
    # per-frame formants: the vowel of the syllable at the frame centre, smoothed across frames
    centre_t = (np.arange(n_frames) * hop + nfft / 2 - pad) / sr
    which = np.clip(np.searchsorted(starts, centre_t, side='right') - 1, 0, len(syl) - 1)
    formants = np.array([_VOWELS[s[0]] for s in syl], np.float64)[which]
    kernel = np.hanning(7)[1:-1]
    kernel /= kernel.sum()
    formants = np.stack([np.convolve(np.pad(formants[:, j], 2, mode='edge'), kernel, 'valid') for j in range(3)], 1)
    bw = np.array([90.0, 120.0, 180.0])
    gains = np.array([1.0, 0.6, 0.3])
    envelope = sum(gains[j] / (1.0 + ((freqs[None, :] - formants[:, j:j + 1]) / (bw[j] / 2)) ** 2) for j in range(3))
    envelope = envelope + 0.02
    envelope *= (np.maximum(freqs, 100.0) / 100.0)[None, :] ** (-0.5 * (tilt - 0.5))
    hiss = np.exp(-0.5 * ((freqs - 5000.0) / 1500.0) ** 2)[None, :]
    Y = V * envelope + Z * hiss
    frames = np.fft.irfft(Y, nfft, axis=1) * win
    out = np.zeros(len(v))
    norm = np.zeros(len(v))
    for i in range(n_frames):
        out[i * hop:i * hop + nfft] += frames[i]
        norm[i * hop:i * hop + nfft] += win ** 2
    return (out / np.maximum(norm, 1e-3))[pad:pad + n]


def _fade(n, m):
    f = np.ones(n)
    m = min(m, n // 2)
    if m > 0:
        f[:m] = np.linspace(0, 1, m)
        f[-m:] = np.linspace(1, 0, m)
    return f


def frame_envelope(audio: np.ndarray, n_frames: int, fps: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Loudness per video frame in [0, 1] (RMS over each frame's 40 ms, relative to a speaking level)."""
    hop = sr / fps
    out = np.zeros(n_frames, np.float32)
    for i in range(n_frames):
        a, b = int(i * hop), int((i + 1) * hop)
        seg = audio[a:b]
        out[i] = np.sqrt(np.mean(seg ** 2)) if len(seg) else 0.0
    ref = np.percentile(out[out > 1e-4], 90) if (out > 1e-4).any() else 1.0
    out = np.clip(out / max(ref, 1e-6), 0, 1)
    return np.convolve(np.pad(out, 1, mode='edge'), [0.25, 0.5, 0.25], 'valid').astype(np.float32)
