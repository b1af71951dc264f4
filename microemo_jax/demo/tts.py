"""Speech for the demo corpus: espeak-ng when it is installed, otherwise the synthetic voice of ``demo.voice``.

Both carry the prosody emotion (``demo.prosody``) the way listeners and the audio branch hear it: pitch
level and movement, speaking rate, loudness and voice quality. espeak-ng (``-v en-us+f3``) gets
per-emotion pitch, speed, amplitude and word gap. Both are deterministic for a given text, emotion and seed.

    audio = speak("I'm totally fine with it.", 'neutral', rng)    # float32 mono at SAMPLE_RATE
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import wave

import numpy as np

from microemo_jax.demo.prosody import PROSODY, SAMPLE_RATE
from microemo_jax.demo.voice import fade, synth_voice


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
        audio = audio[:int(max_seconds * SAMPLE_RATE)] * fade(int(max_seconds * SAMPLE_RATE), int(0.03 * SAMPLE_RATE))
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
