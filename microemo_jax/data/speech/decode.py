"""Audio of a clip: decode with PyAV, downmix to mono, resample to 16 kHz, and Whisper log-mel features.

Timing rules (why: utterance spans and mel frames must line up with the clip's seconds):

* Sample 0 of the waveform is the audio stream's start (``Audio.start_time`` says where that is on the
  container timeline; usually 0). Each decoded frame is placed at the sample its timestamp says, relative
  to that start: samples before the start are dropped (encoder priming that a container announces through
  negative timestamps), gaps are filled with silence, overlaps are cut. Differences below
  ``_JITTER_S`` are treated as contiguous because containers with coarse time bases (WebM/Matroska: 1 ms)
  round frame timestamps.
* FFmpeg already drops AAC priming in MP4/MOV/M4A (edit list) and Matroska (CodecDelay), and Opus pre-skip;
  MPEG-TS and raw ADTS do not record it, so those keep AAC's 1024 priming samples (a 23 ms shift at
  44.1 kHz): nothing in the file says how many there are, and we do not guess.
* The result is cut to the duration the file declares: the audio stream's own duration, else the
  container's (minus the audio stream's offset from the container start), else whatever decodes. A
  shortfall up to ``_PAD_S`` (the last partial codec frame) is padded with silence. A larger shortfall
  against the *stream's* declared duration means the file is truncated (``reason='truncated_audio'``); against
  the container's duration it only means the audio track ends before the video, which is valid, so the
  decoded length is kept.
* Channels are averaged (an explicit, level-preserving downmix), then ``av.AudioResampler`` converts the rate;
  the output is trimmed or zero-padded to ``round(n * 16000 / source_rate)`` samples and clipped to [-1, 1].
"""
from __future__ import annotations

import dataclasses
import fractions
import os

import av
import numpy as np

from microemo_jax.data.speech.log_mel import log_mel_for_window, log_mel_spectrogram

SAMPLE_RATE = 16000
HOP_LENGTH = 160      # Whisper: one mel frame per 10 ms
_N_FFT = 400
_JITTER_S = 0.005     # timestamp disagreements below this are rounding, not gaps or overlaps
_PAD_S = 0.1          # a shortfall this small against the declared duration is padded with silence
_RESAMPLE_CHUNK = 1 << 16

_INT_SCALE = {np.dtype(np.uint8): None, np.dtype(np.int16): 2.0 ** 15, np.dtype(np.int32): 2.0 ** 31,
              np.dtype(np.int64): 2.0 ** 63}


class AudioError(Exception):
    """The audio of ``path`` cannot be used; ``reason`` is the short tag ``prepare`` writes to skipped.jsonl.

    Reasons: 'zero_bytes' (empty file), 'corrupt_audio' (cannot be opened or decoded), 'truncated_audio'
    (decodes to clearly less than the duration the audio stream declares).
    """

    def __init__(self, path: str, reason: str, detail: str):
        self.path, self.reason, self.detail = str(path), reason, detail
        super().__init__(f"{path}: {reason}: {detail}")


@dataclasses.dataclass
class Audio:
    """Mono float32 waveform in [-1, 1] at ``sample_rate``; empty with ``has_audio=False`` when there is no track.

    ``has_audio`` says the file has an audio stream (its waveform can still be empty if nothing decodes);
    ``source_rate``/``source_channels`` describe the first audio stream as stored (0 when there is none);
    ``start_time`` is where sample 0 lies on the container timeline, in seconds.
    """
    waveform: np.ndarray
    sample_rate: int
    has_audio: bool
    source_rate: int
    source_channels: int
    start_time: float = 0.0

    @property
    def duration(self) -> float:
        return len(self.waveform) / self.sample_rate


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> Audio:
    """The first audio stream of a video or audio file (.mp4/.mov/.mkv/.webm/.avi/.wav/.mp3/.m4a/.flac/...).

    A file without an audio stream is valid: ``has_audio=False`` and an empty waveform. Raises
    FileNotFoundError for a missing path and AudioError (with ``reason``) for unusable audio.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such audio/video file")
    if os.path.getsize(path) == 0:
        raise AudioError(path, 'zero_bytes', 'the file is empty (0 bytes)')
    _check_wav_size(path)
    try:
        container = av.open(path)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise AudioError(path, 'corrupt_audio', f"cannot be opened as a media file ({e})") from e
    with container:
        if not container.streams.audio:
            return Audio(np.zeros(0, np.float32), sample_rate, False, 0, 0)
        stream = container.streams.audio[0]
        try:
            mono, rate, channels, start = _decode_mono(container, stream)
        except (av.error.FFmpegError, ValueError) as e:
            raise AudioError(path, 'corrupt_audio', f"audio stream #{stream.index} fails to decode ({e})") from e
        mono = _fit_declared_duration(path, container, stream, mono, rate, start)
    if rate == 0:  # a stream with no decodable frames and nothing declared
        rate, channels = stream.rate or 0, stream.channels or 0
    waveform = _resample(mono, rate, sample_rate) if len(mono) else np.zeros(0, np.float32)
    return Audio(np.clip(waveform, -1.0, 1.0).astype(np.float32), sample_rate, True, int(rate), int(channels),
                 float(start))


def _check_wav_size(path: str) -> None:
    """Raise 'truncated_audio' when a RIFF/WAVE file holds fewer data bytes than its header declares.

    FFmpeg silently shortens such a file to what is there, so the header is the only evidence of the cut
    (MER2025 ships its audio as .wav). Streamed WAVs that write 0 or 0xFFFFFFFF as the size are left alone.
    """
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b'RIFF' or head[8:12] != b'WAVE':
            return
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            chunk_id, chunk_size = chunk[:4], int.from_bytes(chunk[4:8], 'little')
            if chunk_id == b'data':
                available = size - pos - 8
                if 0 < chunk_size < 0xFFFFFFFF and available < chunk_size:
                    raise AudioError(path, 'truncated_audio', f"the WAV header declares {chunk_size} data bytes but "
                                     f"only {available} are present; the file was cut short - re-download or "
                                     f"re-export it")
                return
            pos += 8 + chunk_size + (chunk_size & 1)  # chunks are word-aligned


def _to_float_mono(frame: av.AudioFrame) -> np.ndarray:
    """One decoded frame -> float32 (samples,), the mean of its channels, full scale = 1."""
    arr = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:  # packed: (1, samples * channels), interleaved
        arr = arr.reshape(-1, channels).T
    if arr.dtype.kind in 'iu':
        if arr.dtype == np.uint8:
            arr = (arr.astype(np.float32) - 128.0) / 128.0
        else:
            arr = (arr.astype(np.float64) / _INT_SCALE[arr.dtype]).astype(np.float32)
    return arr.astype(np.float32).mean(axis=0)


def _decode_mono(container, stream) -> tuple[np.ndarray, int, int, float]:
    """Decode ``stream`` -> (mono waveform at the first frame's rate, rate, channels, stream start in seconds)."""
    tb = stream.time_base
    declared_start = float(stream.start_time * tb) if stream.start_time is not None and tb else None
    start = declared_start
    rate = channels = 0
    chunks: list[np.ndarray] = []
    cursor = 0  # samples written so far
    for frame in container.decode(stream):
        x = _to_float_mono(frame)
        if not rate:
            rate, channels = frame.sample_rate, frame.layout.nb_channels
        elif frame.sample_rate != rate:  # a mid-stream rate change (rare): bring it to the first rate
            n = max(1, round(len(x) * rate / frame.sample_rate))
            x = np.interp(np.arange(n) * frame.sample_rate / rate, np.arange(len(x)), x).astype(np.float32)
        if frame.time is not None:
            if start is None:  # no declared start: the first timestamp, but never before 0 (priming)
                start = max(0.0, float(frame.time))
            pos = round((float(frame.time) - start) * rate)
            jitter = round(_JITTER_S * rate)
            if pos > cursor + jitter:  # gap: silence
                chunks.append(np.zeros(pos - cursor, np.float32))
                cursor = pos
            elif pos < cursor - jitter:  # overlap, or samples before the stream start: cut them
                x = x[cursor - pos:]
        chunks.append(x)
        cursor += len(x)
    mono = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return mono, rate, channels, (start or 0.0)


def _fit_declared_duration(path, container, stream, mono, rate, start) -> np.ndarray:
    """Cut (or pad by at most ``_PAD_S``) to the declared duration; raise on a truncated stream."""
    if not rate:
        return mono
    stream_declared = stream.duration is not None and stream.time_base is not None and stream.duration > 0
    if stream_declared:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None and container.duration > 0:
        container_start = (container.start_time or 0) / av.time_base
        duration = container.duration / av.time_base - max(0.0, start - container_start)
    else:
        return mono
    target = max(0, round(duration * rate))
    short = target - len(mono)
    if short <= 0:
        return mono[:target]
    if short <= round(_PAD_S * rate):
        return np.concatenate([mono, np.zeros(short, np.float32)])
    if stream_declared:
        raise AudioError(path, 'truncated_audio', f"the audio stream declares {duration:.3f} s but only "
                         f"{len(mono) / rate:.3f} s decode; the file is probably cut short - re-download or "
                         f"re-encode it")
    return mono


def _resample(mono: np.ndarray, source_rate: int, rate: int) -> np.ndarray:
    """Mono float32 at ``source_rate`` -> ``rate`` by FFmpeg's resampler, exactly round(n * rate / source_rate) long."""
    if source_rate == rate:
        return mono.astype(np.float32)
    resampler = av.AudioResampler(format='flt', layout='mono', rate=rate)
    out: list[np.ndarray] = []
    tb = fractions.Fraction(1, source_rate)
    for i in range(0, len(mono), _RESAMPLE_CHUNK):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(mono[None, i:i + _RESAMPLE_CHUNK]), format='fltp',
                                           layout='mono')
        frame.sample_rate, frame.pts, frame.time_base = source_rate, i, tb
        out.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    out.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    y = np.concatenate(out) if out else np.zeros(0, np.float32)
    n = round(len(mono) * rate / source_rate)
    return y[:n] if len(y) >= n else np.concatenate([y, np.zeros(n - len(y), np.float32)])


def log_mel(waveform: np.ndarray, *, num_mel_bins: int, max_frames: int) -> np.ndarray:
    """Whisper log-mel of a 16 kHz mono waveform -> float32 (num_mel_bins, M), M = min(len // 160, max_frames).

    Not padded to 30 s (the model masks the frames it does not get). The waveform is first cut to
    ``max_frames * 160`` samples, as Whisper cuts to 30 s before computing features, so the
    normalisation sees exactly the audio the model sees. ``log_mel_spectrogram`` clamps each clip's log10
    power to (max - 8) and maps x -> (x + 4) / 4. Whisper computes the same max over its zero-padded 30 s
    input; zeros give the lowest possible value (log10(1e-10)), so the max (hence the clamp floor) is the
    same and only the last frame or two differ (reflection at the clip end instead of zeros). Frames of
    Whisper's padding would sit at the clamp floor (max - 8 + 4) / 4; here there are none. Digital
    silence gives the constant (-10 + 4) / 4 = -1.5. Empty audio (or under one hop) gives M = 0.
    """
    x = np.asarray(waveform, np.float32).reshape(-1)
    if max_frames < 0:
        raise ValueError(f"log_mel: max_frames must be >= 0, got {max_frames}")
    frames = min(len(x) // HOP_LENGTH, max_frames)
    if frames == 0:
        return np.zeros((num_mel_bins, 0), np.float32)
    x = x[:frames * HOP_LENGTH]
    if len(x) <= _N_FFT // 2:  # the centred STFT needs > 200 samples: a single frame from 160-200 samples
        x = np.concatenate([x, np.zeros(_N_FFT // 2 + 1 - len(x), np.float32)])
    return log_mel_spectrogram(x, num_mel_bins)[:, :frames].astype(np.float32)


def clip_log_mel(waveform: np.ndarray, *, num_mel_bins: int, max_frames: int, window_frames: int = 0) -> np.ndarray:
    """The log-mel ``prepare`` stores: ``log_mel`` of the clip alone, or with ``window_frames`` > 0
    (``model.audio.pad_to_30s``: the encoder's whole 30 s window) the frames that transformers' feature
    extractor computes for the clip zero-padded to that window, whose normalisation and last frames differ
    slightly; the model then fills the rest of the window with the extractor's padding value."""
    if window_frames <= 0:
        return log_mel(waveform, num_mel_bins=num_mel_bins, max_frames=max_frames)
    return log_mel_for_window(waveform, num_mel_bins, window_frames)[:, :max_frames].astype(np.float32)
