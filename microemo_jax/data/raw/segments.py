"""A clip that is a span of a longer video, and one half of its frame: cut out into files of its own.

IEMOCAP ships no utterance videos: each utterance is a [start, end] span of its dialog's video, in which
both actors sit side by side. MER-UniBench's preprocessing cuts the span with ffmpeg and keeps the
speaker's half (AffectGPT fffca79 ``toolkit/preprocess/iemocap.py``); ``cut_clip`` does the same with
PyAV (no ffmpeg binary), so that the rest of ``prepare`` sees an ordinary short clip: H.264 video at the
source's frame rate (frames whose time falls in [start, end)), and, when asked, the span's audio as a
16 kHz mono 16-bit WAV. The files go into a folder the caller owns and removes.
"""
from __future__ import annotations

import os
import wave
from fractions import Fraction

import av
import cv2
import numpy as np

from microemo_jax.data.speech.decode import SAMPLE_RATE, load_audio

CROPS = ('left', 'right')


def _half(rgb: np.ndarray, crop: str | None) -> np.ndarray:
    if crop is None:
        return rgb
    w = rgb.shape[1] // 2
    return rgb[:, :w] if crop == 'left' else rgb[:, rgb.shape[1] - w:]


def _even(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    return np.ascontiguousarray(rgb[:h - h % 2, :w - w % 2])


def _frames(src: str, start: float, end: float):
    """RGB frames of ``src`` whose presentation time lies in [start, end), and the stream's frame rate."""
    with av.open(src) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        out = []
        for frame in container.decode(stream):
            t = frame.time
            if t is None or t < start - 1e-6:
                continue
            if t >= end:
                break
            out.append(frame.to_ndarray(format='rgb24'))
    return out, rate


def _write_video(path: str, frames: list[np.ndarray], rate: float) -> None:
    fps = Fraction(rate).limit_denominator(1001)
    h, w = frames[0].shape[:2]
    with av.open(path, 'w', format='mp4') as out:
        vs = out.add_stream('libx264', rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, 'yuv420p'
        vs.options = {'preset': 'veryfast', 'crf': '18'}
        for k, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), format='yuv420p')
            frame.pts, frame.time_base = k, 1 / fps
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)


def _write_wav(path: str, samples: np.ndarray) -> None:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype('<i2')
    with wave.open(path, 'wb') as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())


def cut_clip(src: str, folder: str, name: str, *, segment: tuple[float, float] | None = None,
             crop: str | None = None, audio: bool = True) -> tuple[str, str | None]:
    """(video path, audio path or None) of ``src``'s ``segment`` (whole video: None), ``crop`` half, in ``folder``.

    The files are named after ``name`` (so everything keyed on a clip's file name stays per clip). Raises
    ValueError for an empty span, a span past the video's end, or an unknown crop.
    """
    if crop not in (None, *CROPS):
        raise ValueError(f"crop must be one of {CROPS} or None, got {crop!r}")
    start, end = segment if segment is not None else (0.0, float('inf'))
    if not end > start >= 0:
        raise ValueError(f"{src}: the span [{start}, {end}] s is empty or negative")
    frames, rate = _frames(src, start, end)
    if not frames:
        raise ValueError(f"{src}: no video frame between {start:.3f} and {end:.3f} s (the video is shorter)")
    video = os.path.join(folder, name + '.mp4')
    _write_video(video, [_even(_half(f, crop)) for f in frames], rate)
    wav = None
    if audio:
        sound = load_audio(src)
        if sound.has_audio:
            first = int(round(start * SAMPLE_RATE))
            last = len(sound.waveform) if end == float('inf') else int(round(end * SAMPLE_RATE))
            wav = os.path.join(folder, name + '.wav')
            _write_wav(wav, sound.waveform[first:last])
    return video, wav
