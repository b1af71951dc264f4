"""The synthetic voice of the demo corpus, used when espeak-ng is not installed: a small source-filter
synthesiser. A band-limited glottal pulse train follows a pitch contour (declination, accents on stressed
syllables, a final rise for questions and surprise, tremolo for fear), with breath noise, noise bursts for
consonants, and formant envelopes of the vowels in the text applied in the STFT domain; syllable count and
vowels come from the words, so the signal has the rhythm of the sentence. Deterministic for a given text,
emotion and random generator.
"""
from __future__ import annotations

import re

import numpy as np

from microemo_jax.demo.prosody import PROSODY, SAMPLE_RATE

# Female vowel formants (F1, F2, F3 Hz) for the vowel letters of a syllable.
_VOWELS = {'a': (850, 1650, 2800), 'e': (600, 2200, 2950), 'i': (380, 2650, 3250), 'o': (600, 1000, 2800),
           'u': (420, 1250, 2700), 'y': (380, 2550, 3200), '@': (650, 1450, 2800)}
_FRICATIVES = set('scfhzxjkpt')
_WORD = re.compile(r"[A-Za-z']+|[,.;:!?]")


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
    out *= fade(len(out), int(0.01 * sr))
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


def fade(n, m):
    """Gain of ``n`` samples: 1, with linear ramps of ``m`` samples in and out."""
    f = np.ones(n)
    m = min(m, n // 2)
    if m > 0:
        f[:m] = np.linspace(0, 1, m)
        f[-m:] = np.linspace(1, 0, m)
    return f
