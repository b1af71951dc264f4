"""Small real media files for the data tests, written with PyAV (no fixtures on disk, no mocks).

Everything here writes genuine encoded files (H.264/AAC mp4, VP9/Opus WebM, MJPEG/PCM AVI, MPEG-4 Part 2
mov, PCM WAV) so that the data pipeline is tested against the same demuxers and decoders it meets in
real datasets. Keep them tiny (64-128 px, < 2 s): several engineers run tests on 2 shared cores.

Frame content helpers:
  * ``index_frame(i, h, w)`` draws the frame index as 8 black/white vertical stripes (bit b of ``i`` in
    stripe b, most significant first) that survive lossy coding and any resize; ``read_index(frame)``
    reads it back. Use them to check which native frames a sampler or tubelet picked.
  * ``orientation_frame(h, w)`` is red in its top third and blue below: after decoding a file that carries
    rotation metadata, an upright frame has red on top (``is_upright(frame)``).
  * ``astronaut_face(size)`` is the face of ``skimage.data.astronaut()`` (a real photo), and
    ``moving_face_frames`` pastes it onto a textured background along a path, for face-detector tests.

Writers:
  * ``write_video(path, frames, ...)`` is the general writer (codec, fps or explicit pts for variable
    frame rate, rotation metadata, optional audio track, live-streamed WebM); ``write_h264_mp4``,
    ``write_vp9_webm``, ``write_mjpeg_avi``, ``write_mpeg4_mov`` are named presets over it.
  * ``write_wav``, ``write_audio_only_mp4``, ``write_audio_with_cover``, ``write_text``, ``write_empty``,
    ``truncate_file``, ``corrupt_after_header`` make the bad inputs (see tests/data/test_video.py BAD for the
    reason each one must get).

Import from a test with ``from tests.support.media import ...``.
"""
from __future__ import annotations

import io
import os
from fractions import Fraction

import av
import numpy as np

# Codec presets: PyAV encoder name, pixel format, encoder options (fast, high quality: tests read pixels).
VIDEO_CODECS = {
    'h264': ('libx264', 'yuv420p', {'preset': 'ultrafast', 'crf': '12'}),
    'vp9': ('libvpx-vp9', 'yuv420p', {'deadline': 'realtime', 'cpu-used': '8', 'crf': '10', 'b': '0'}),
    'mjpeg': ('mjpeg', 'yuvj420p', {'q:v': '2'}),
    'mpeg4': ('mpeg4', 'yuv420p', {'qscale': '2'}),
}
# Default audio codec per container extension.
AUDIO_CODECS = {'.mp4': 'aac', '.mov': 'aac', '.m4v': 'aac', '.mkv': 'aac', '.webm': 'libopus',
                '.avi': 'pcm_s16le'}
NUM_BITS = 8


# ----------------------------------------------------------------------------------------------- content
def index_frame(i: int, height: int = 64, width: int = 64) -> np.ndarray:
    """An RGB frame showing ``i`` (0..255) as 8 vertical black/white stripes, most significant bit left."""
    if not 0 <= i < 2 ** NUM_BITS:
        raise ValueError(f"index {i} does not fit in {NUM_BITS} stripes")
    img = np.zeros((height, width, 3), np.uint8)
    edges = np.linspace(0, width, NUM_BITS + 1).round().astype(int)
    for b in range(NUM_BITS):
        if (i >> (NUM_BITS - 1 - b)) & 1:
            img[:, edges[b]:edges[b + 1]] = 255
    return img


def read_index(frame: np.ndarray) -> int:
    """Inverse of ``index_frame`` for a decoded (possibly resized, lossy) frame."""
    h, w = frame.shape[:2]
    grey = np.asarray(frame, np.float32).mean(-1) if frame.ndim == 3 else np.asarray(frame, np.float32)
    value = 0
    for b in range(NUM_BITS):
        x0, x1 = int(w * (b + 0.3) / NUM_BITS), max(int(w * (b + 0.7) / NUM_BITS), int(w * (b + 0.3) / NUM_BITS) + 1)
        bit = grey[h // 4: 3 * h // 4, x0:x1].mean() > 127
        value = (value << 1) | int(bit)
    return value


def index_frames(n: int, height: int = 64, width: int = 64) -> np.ndarray:
    """``n`` frames numbered 0..n-1 with ``index_frame``."""
    return np.stack([index_frame(i, height, width) for i in range(n)])


def orientation_frame(height: int, width: int) -> np.ndarray:
    """Red top third, blue below: tells which way is up after a decode."""
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 2] = 255
    img[: height // 3] = (255, 0, 0)
    return img


def is_upright(frame: np.ndarray) -> bool:
    """True when ``frame`` (RGB) shows ``orientation_frame`` the right way up (red top, blue bottom)."""
    f = np.asarray(frame, np.float32)
    h = f.shape[0]
    top, bottom = f[: h // 5].mean((0, 1)), f[-h // 3:].mean((0, 1))
    return bool(top[0] > 150 and top[2] < 100 and bottom[2] > 150 and bottom[0] < 100)


def astronaut_face(size: int = 64) -> np.ndarray:
    """The head of Eileen Collins from ``skimage.data.astronaut()`` (a real photo), ``size`` x ``size`` RGB.

    The crop is the face (x 177..272, y 66..161 in the 512 px photo, where OpenCV's frontal Haar cascade
    fires) with some hair and background around it, so a detector sees a natural head-and-shoulders patch.
    """
    import cv2
    from skimage import data
    crop = data.astronaut()[36:196, 145:305]  # 160 x 160 around the 95 px face
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def textured_background(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth, non-face background (blurred noise) so detectors have something to reject."""
    import cv2
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)


def moving_face_frames(n: int, height: int = 128, width: int = 160, face_size: int = 64,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` frames with the astronaut face sliding left to right across a textured background.

    Returns (frames (n, H, W, 3) uint8, boxes (n, 4) float32 x, y, w, h of the pasted patch per frame).
    """
    face = astronaut_face(face_size)
    bg = textured_background(height, width, seed)
    frames, boxes = [], []
    x_max, y = width - face_size, (height - face_size) // 2
    for i in range(n):
        x = int(round(x_max * i / max(n - 1, 1)))
        img = bg.copy()
        img[y:y + face_size, x:x + face_size] = face
        frames.append(img)
        boxes.append((x, y, face_size, face_size))
    return np.stack(frames), np.asarray(boxes, np.float32)


def noise_frames(n: int, height: int = 64, width: int = 64, seed: int = 0) -> np.ndarray:
    """Uniform random RGB frames (no faces, hard to compress)."""
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------------------------- writers
def _tone(seconds: float, sample_rate: int, channels: int) -> np.ndarray:
    """(channels, samples) float32 sine tones (different pitch per channel), amplitude 0.3."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return np.stack([0.3 * np.sin(2 * np.pi * (440.0 * (c + 1)) * t) for c in range(channels)]).astype(np.float32)


def _add_audio(container, codec: str, sample_rate: int, channels: int):
    stream = container.add_stream(codec, rate=sample_rate)
    stream.layout = 'mono' if channels == 1 else 'stereo'
    return stream


def _encode_audio(container, stream, samples: np.ndarray, sample_rate: int) -> None:
    """Feed (C, N) float32 samples in 1024-sample frames; PyAV adapts format and frame size to the encoder."""
    layout = 'mono' if samples.shape[0] == 1 else 'stereo'
    step = 1024
    for start in range(0, samples.shape[1], step):
        chunk = np.ascontiguousarray(samples[:, start:start + step])
        frame = av.AudioFrame.from_ndarray(chunk, format='fltp', layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_video(path: str | os.PathLike, frames: np.ndarray, *, codec: str = 'h264', fps: float = 25,
                pts_seconds: list[float] | np.ndarray | None = None, rotation: int | None = None,
                rotate_tag: int | None = None, audio: dict | None = None, faststart: bool = False,
                streamed: bool = False, options: dict | None = None) -> str:
    """Encode RGB ``frames`` (N, H, W, 3) uint8 into ``path``; the container is chosen by the extension.

    Args:
      codec: 'h264' | 'vp9' | 'mjpeg' | 'mpeg4' (see VIDEO_CODECS).
      fps: nominal frame rate (constant frame rate when ``pts_seconds`` is None).
      pts_seconds: explicit presentation times (seconds, increasing, multiples of 1 ms) for a variable
        frame rate file; the stream time base is then 1/1000 s.
      rotation: display-matrix rotation, counter-clockwise degrees as PyAV's ``VideoFrame.rotation`` reads
        it back: a player turns the stored picture by this much. To make a file whose upright picture is
        ``up``, store ``np.rot90(up, -rotation // 90)`` and pass ``rotation``.
      rotate_tag: write the legacy ``rotate`` stream tag instead (clockwise degrees, as phones wrote it).
      audio: None for no audio track, else dict(sample_rate=16000, channels=1, seconds=None (= video
        length), codec=None (= default for the container)).
      faststart: mp4/mov only: put the index (moov) before the media data.
      streamed: WebM/Matroska only: write through a non-seekable pipe like a live recorder (a browser's
        MediaRecorder, ffmpeg to stdout): the file then declares no duration at all and has no index.
    Returns the path as a str.
    """
    path = os.fspath(path)
    frames = np.asarray(frames, np.uint8)
    n, height, width = frames.shape[:3]
    enc_name, pix_fmt, enc_opts = VIDEO_CODECS[codec]
    ext = os.path.splitext(path)[1].lower()
    container_opts = {'movflags': '+faststart'} if faststart else {}
    sink = None
    if streamed:
        if ext not in ('.webm', '.mkv'):
            raise ValueError("streamed=True is for .webm/.mkv (mp4 needs a seekable file or fragmenting)")
        sink = open(path, 'wb')
        container = av.open(_Pipe(sink), 'w', format='webm' if ext == '.webm' else 'matroska')
    else:
        container = av.open(path, 'w', options=container_opts)
    try:
        rate = Fraction(fps).limit_denominator(1001)
        stream = container.add_stream(enc_name, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {**enc_opts, **(options or {})}
        if pts_seconds is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if rotate_tag is not None:
            stream.metadata['rotate'] = str(rotate_tag)
        astream = None
        if audio is not None:
            a_codec = audio.get('codec') or AUDIO_CODECS.get(ext, 'aac')
            astream = _add_audio(container, a_codec, audio.get('sample_rate', 16000), audio.get('channels', 1))
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format='rgb24')
            if pts_seconds is not None:
                frame.pts = int(round(float(pts_seconds[i]) * 1000))
                frame.time_base = Fraction(1, 1000)
            else:
                frame.pts = i
                frame.time_base = 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if astream is not None:
            if pts_seconds is not None:
                seconds = float(pts_seconds[-1]) + 1.0 / fps
            else:
                seconds = n / float(rate)
            seconds = audio.get('seconds') or seconds
            sr = audio.get('sample_rate', 16000)
            _encode_audio(container, astream, _tone(seconds, sr, audio.get('channels', 1)), sr)
    finally:
        container.close()
        if sink is not None:
            sink.close()
    return path


class _Pipe(io.RawIOBase):
    """A write-only, non-seekable view of a file (what a muxer sees when writing to a pipe)."""

    def __init__(self, f):
        super().__init__()
        self._f = f

    def writable(self):
        return True

    def seekable(self):
        return False

    def write(self, data):
        return self._f.write(data)


def write_h264_mp4(path, frames, *, fps=25, audio: dict | None = None, **kw) -> str:
    """H.264 in mp4 (+ AAC when ``audio`` is given): the most common dataset layout."""
    return write_video(path, frames, codec='h264', fps=fps, audio=audio, **kw)


def write_vp9_webm(path, frames, *, fps=25, audio: dict | None = None, **kw) -> str:
    """VP9 in WebM (+ Opus at 48 kHz when ``audio`` is given)."""
    if audio is not None:
        audio = {'sample_rate': 48000, **audio}
    return write_video(path, frames, codec='vp9', fps=fps, audio=audio, **kw)


def write_mjpeg_avi(path, frames, *, fps=25, audio: dict | None = None, **kw) -> str:
    """Motion-JPEG in AVI (+ PCM when ``audio`` is given): old camera / webcam files."""
    return write_video(path, frames, codec='mjpeg', fps=fps, audio=audio, **kw)


def write_mpeg4_mov(path, frames, *, fps=25, audio: dict | None = None, **kw) -> str:
    """MPEG-4 Part 2 in QuickTime mov (+ AAC when ``audio`` is given)."""
    return write_video(path, frames, codec='mpeg4', fps=fps, audio=audio, **kw)


def _write_tone(path, codec: str, seconds: float, sample_rate: int, channels: int) -> str:
    """A file holding one audio track of ``codec`` (a tone) and nothing else."""
    path = os.fspath(path)
    with av.open(path, 'w') as container:
        stream = _add_audio(container, codec, sample_rate, channels)
        _encode_audio(container, stream, _tone(seconds, sample_rate, channels), sample_rate)
    return path


def write_wav(path, seconds: float = 0.5, sample_rate: int = 16000, channels: int = 1) -> str:
    """A PCM WAV file: a real media file with no video stream (the pipeline must call it 'not a video')."""
    return _write_tone(path, 'pcm_s16le', seconds, sample_rate, channels)


def write_audio_only_mp4(path, seconds: float = 0.5, sample_rate: int = 16000, channels: int = 1) -> str:
    """An mp4 container holding only an AAC track (a video container with no video stream)."""
    return _write_tone(path, 'aac', seconds, sample_rate, channels)


def write_audio_with_cover(path, seconds: float = 0.5, sample_rate: int = 16000) -> str:
    """An mp4 music file: AAC plus cover art (an MJPEG stream flagged ``attached_pic``), which libavformat
    lists as a video stream although it is one still picture: the pipeline must see no video in it."""
    path = os.fspath(path)
    with av.open(path, 'w', format='mp4') as container:
        astream = _add_audio(container, 'aac', sample_rate, 1)
        cover = container.add_stream('mjpeg', rate=1)
        cover.width = cover.height = 64
        cover.pix_fmt = 'yuvj420p'
        cover.disposition = av.stream.Disposition.attached_pic
        frame = av.VideoFrame.from_ndarray(orientation_frame(64, 64), format='rgb24')
        frame.pts = 0
        container.mux(cover.encode(frame) + cover.encode(None))
        _encode_audio(container, astream, _tone(seconds, sample_rate, 1), sample_rate)
    return path


def write_text(path, text: str = 'this is not a video\n') -> str:
    """A text file (e.g. named .mp4 by mistake)."""
    path = os.fspath(path)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


def write_empty(path) -> str:
    """A zero-byte file (failed downloads)."""
    path = os.fspath(path)
    open(path, 'wb').close()
    return path


def truncate_file(src, dst, fraction: float = 0.5) -> str:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst`` (an interrupted download)."""
    dst = os.fspath(dst)
    with open(src, 'rb') as f:
        data = f.read()
    with open(dst, 'wb') as f:
        f.write(data[: int(len(data) * fraction)])
    return dst


def corrupt_after_header(src, dst, keep_bytes: int = 64, seed: int = 0) -> str:
    """Copy ``src`` to ``dst`` keeping its first ``keep_bytes`` and replacing the rest by random bytes."""
    dst = os.fspath(dst)
    with open(src, 'rb') as f:
        data = f.read()
    rng = np.random.default_rng(seed)
    tail = rng.integers(0, 256, max(len(data) - keep_bytes, 0), dtype=np.uint8).tobytes()
    with open(dst, 'wb') as f:
        f.write(data[:keep_bytes] + tail)
    return dst
