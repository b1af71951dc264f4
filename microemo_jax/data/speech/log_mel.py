"""Whisper's log-mel features from 16 kHz audio, in numpy (no torch, no librosa).

Matches transformers' ``WhisperFeatureExtractor`` numpy path on an unpadded waveform: centred STFT
(reflect padding, periodic Hann window of n_fft samples, hop 160), power spectrum, Slaney-scale,
Slaney-normalised mel filters over 0-8 kHz, log10 with a 1e-10 floor, the last STFT frame dropped,
values clamped to (per-waveform max - 8), then (x + 4) / 4. One frame per 10 ms: a waveform of L
samples gives L // hop_length frames.

Unlike the feature extractor ``log_mel_spectrogram`` does not pad the audio to 30 s: emotion clips are short
and our encoder accepts any length up to 30 s. ``log_mel_for_window`` gives the extractor's exact frames of a
clip padded to the encoder's window (``model.audio.pad_to_30s``), up to the last frame the clip reaches; the
model (``whisper.pad_to_window``) fills in the rest, which is the clamp floor.
"""
from __future__ import annotations

import numpy as np


def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    linear = 3.0 * f / 200.0
    log = 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(f >= 1000.0, log, linear)


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    linear = 200.0 * m / 3.0
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log, linear)


def mel_filters(num_mel_bins: int, *, n_fft: int = 400, sampling_rate: int = 16000,
                f_max: float = 8000.0) -> np.ndarray:
    """Triangular Slaney filters, area-normalised: (n_fft // 2 + 1, num_mel_bins), float64."""
    edges_hz = _mel_to_hz_slaney(np.linspace(_hz_to_mel_slaney(0.0), _hz_to_mel_slaney(f_max), num_mel_bins + 2))
    fft_hz = np.linspace(0.0, sampling_rate // 2, n_fft // 2 + 1)
    rising = (fft_hz[:, None] - edges_hz[None, :-2]) / np.diff(edges_hz)[None, :-1]
    falling = (edges_hz[None, 2:] - fft_hz[:, None]) / np.diff(edges_hz)[None, 1:]
    tri = np.maximum(0.0, np.minimum(rising, falling))
    return tri * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[None, :]


def log_mel_spectrogram(audio_16k: np.ndarray, num_mel_bins: int = 80, *, n_fft: int = 400,
                        hop_length: int = 160, sampling_rate: int = 16000) -> np.ndarray:
    """Audio (L,) or (B, L) at 16 kHz -> log-mel (num_mel_bins, L // hop) or (B, num_mel_bins, L // hop), float32.

    Each waveform is normalised by its own maximum (as the feature extractor does per item).
    """
    audio = np.asarray(audio_16k)
    if audio.ndim == 2:
        return np.stack([log_mel_spectrogram(a, num_mel_bins, n_fft=n_fft, hop_length=hop_length,
                                             sampling_rate=sampling_rate) for a in audio])
    if audio.ndim != 1:
        raise ValueError(f"log_mel_spectrogram: audio must be (samples,) or (batch, samples) mono at "
                         f"{sampling_rate} Hz, got shape {audio.shape}")
    if np.iscomplexobj(audio) or not np.issubdtype(audio.dtype, np.number):
        raise ValueError(f"log_mel_spectrogram: audio must be real-valued, got dtype {audio.dtype}")
    if audio.shape[0] <= n_fft // 2:
        raise ValueError(f"log_mel_spectrogram: {audio.shape[0]} samples; the centred STFT needs more than "
                         f"{n_fft // 2} ({1000 * (n_fft // 2 + 1) / sampling_rate:.1f} ms)")
    # The extractor casts float64 input to float32 before the STFT; do the same so results agree.
    x = np.pad(audio.astype(np.float32), n_fft // 2, mode='reflect').astype(np.float64)
    num_frames = 1 + (x.shape[0] - n_fft) // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop_length][:num_frames]
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2  # (frames, n_fft // 2 + 1)
    mel = np.maximum(power @ mel_filters(num_mel_bins, n_fft=n_fft, sampling_rate=sampling_rate), 1e-10)
    log_spec = np.log10(mel).T[:, :-1]
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def log_mel_for_window(audio_16k: np.ndarray, num_mel_bins: int, window_frames: int, *, n_fft: int = 400,
                       hop_length: int = 160) -> np.ndarray:
    """The frames of ``WhisperFeatureExtractor``'s features of ``audio`` padded to ``window_frames`` frames (its
    30 s) that the clip reaches: (num_mel_bins, F), F = min(window, ceil((L + n_fft / 2) / hop)) for L samples.

    The audio is cut to the window, zero-padded to it, and featurised whole, so the normalisation (the clip's
    maximum) and the frames whose STFT windows cross the clip's end are exactly the extractor's; every later
    frame would be the clamp floor max(M - 2, -1.5), which ``models.whisper.encoder.pad_to_window`` restores.
    """
    audio = np.asarray(audio_16k, np.float32).reshape(-1)[:window_frames * hop_length]
    if audio.shape[0] == 0:
        return np.zeros((num_mel_bins, 0), np.float32)
    keep = min(window_frames, -(-(audio.shape[0] + n_fft // 2) // hop_length))
    padded = np.pad(audio, (0, window_frames * hop_length - audio.shape[0]))
    return log_mel_spectrogram(padded, num_mel_bins, n_fft=n_fft, hop_length=hop_length)[:, :keep]
