"""Decode a video once with PyAV into T sampled frames (true timestamps) and the K-frame tubelets behind them.

Why this shape: the frame branch needs T frames with the time they were shown (the timestamp tokens say
"This frame is sampled at {t} second."), and the micro-expression branch needs, at each of those anchors,
K *consecutive native-rate* frames (a micro-expression lasts < 0.5 s, so stride matters). Both come out of
one sequential, threaded decode; only the frames that are kept are converted to RGB.

Conventions (the record schema in ``record.py`` relies on them):
  * time zero is the video stream's start time (``stream.start_time``, else the first frame's pts); every
    timestamp is a frame's real ``pts * time_base`` minus that origin, never ``index / fps``, so variable
    frame rate files are right;
  * frames are shown upright: the display matrix (``VideoFrame.rotation``) or a legacy ``rotate`` tag is
    applied, rounded to a multiple of 90 degrees (flips in the matrix are ignored); non-square pixels
    (sample aspect ratio) are stretched to square ones. ``VideoInfo.width/height`` describe that upright,
    square-pixel picture ("source-frame pixels" for face boxes);
  * frames are squashed to ``frame_size x frame_size`` (no crop, no letterbox), like the reference image
    processors' ``Resize((s, s))``: the whole field of view stays in view and faces get their own crops
    at the true aspect ratio from the tubelets.

Bad inputs raise ``MediaError`` whose ``reason`` is one of REASONS (``prepare`` writes it to skipped.jsonl);
``container.py`` opens files and tells why one is unusable.
A file whose decodable video ends clearly before the duration its header declares is rejected
(``container.check_complete`` holds the truncation policy); one that lacks less than that (a cut-off
tail) is decoded with what is there: ``DecodedClip.decoded_duration`` tells how much. Single undecodable
packets inside an otherwise complete stream are skipped, as ffmpeg does.
"""
from __future__ import annotations

import dataclasses
import os

import av
import numpy as np

from microemo_jax.data.raw.container import REASONS, MediaError, check_complete, open_video, structure, url

__all__ = ['REASONS', 'MediaError', 'VideoInfo', 'DecodedClip', 'sample_times', 'probe', 'decode_clip']

@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a video stream declares (and its first frame shows)."""
    duration: float     # seconds of video from time zero (declared; see ``decode_clip`` for what decoded)
    fps: float          # average frame rate (for variable frame rate files: frames / duration)
    width: int          # upright (rotation applied), square-pixel width of the source frame
    height: int
    rotation: int       # counter-clockwise degrees the stored picture is turned to be shown (0/90/180/270)
    has_audio: bool
    codec: str          # video codec name (h264, vp9, mjpeg, mpeg4, ...)
    num_frames: int     # frames the container declares (0 when unknown)
    start_time: float   # where time zero (the video stream's start) lies on the container timeline, seconds


@dataclasses.dataclass(frozen=True)
class DecodedClip:
    """T' sampled frames of one clip and the K-frame tubelets that start at them.

    frames         uint8 (T', frame_size, frame_size, 3)  RGB, whole frame squashed to a square
    timestamps     float32 (T',)    true presentation time (seconds from time zero) of each frame
    frame_indices  int64 (T',)      index of each anchor among the decoded frames (presentation order)
    tubelets       uint8 (T', K, h, w, 3)  frames anchor..anchor+K-1 at native rate, upright, longer side
                                    <= tubelet_max_side (zeros where ``tubelet_mask`` is False)
    tubelet_mask   bool (T', K)     which tubelet frames exist (False only at the end of the clip)
    info           VideoInfo
    decoded_duration  float         end of the last decoded frame (pts + its duration), seconds
    """
    frames: np.ndarray
    timestamps: np.ndarray
    frame_indices: np.ndarray
    tubelets: np.ndarray
    tubelet_mask: np.ndarray
    info: VideoInfo
    decoded_duration: float

    @property
    def tubelet_scale(self) -> float:
        """Source-frame pixels per tubelet pixel (multiply tubelet coordinates by this)."""
        return self.info.width / self.tubelets.shape[3]


# ----------------------------------------------------------------------------------------------- sampling
def sample_times(duration: float, num_frames: int, mode: str = 'uniform',
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """T sorted times in [0, duration]: one per equal segment, its centre ('uniform') or a random point in it
    ('random', like decord's 'rand'; needs ``rng``). Short clips are fine: several times may share a frame."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    duration = max(float(duration), 0.0)
    edges = np.linspace(0.0, duration, num_frames + 1)
    if mode == 'uniform':
        times = (edges[:-1] + edges[1:]) / 2
    elif mode == 'random':
        if rng is None:
            raise ValueError("sample_times(mode='random') needs an rng (np.random.default_rng(seed))")
        times = edges[:-1] + rng.random(num_frames) * (edges[1:] - edges[:-1])
    else:
        raise ValueError(f"unknown sampling mode {mode!r}: use 'uniform' or 'random'")
    return np.sort(times)


# ----------------------------------------------------------------------------------------------- stream info
def _seconds(value, time_base) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _tag_duration(stream) -> float | None:
    """Matroska writers store a per-track DURATION tag ('HH:MM:SS.nnnnnnnnn')."""
    for key, value in stream.metadata.items():
        if key.lower() == 'duration':
            try:
                h, m, s = value.split(':')
                return int(h) * 3600 + int(m) * 60 + float(s)
            except ValueError:
                return None
    return None


def _declared_duration(container, stream, origin: float) -> tuple[float | None, bool]:
    """(video duration from time zero, whether it is the video's own) from the stream, tags or container."""
    # Several declarations may exist; the largest wins because demuxers re-estimate some of them from what
    # is on disk (an AVI without its index reports the duration of the bytes present, not the header's).
    candidates = [_seconds(stream.duration, stream.time_base), _tag_duration(stream)]
    if stream.frames and stream.average_rate:
        candidates.append(stream.frames / float(stream.average_rate))
    own = max((c for c in candidates if c is not None and c > 0), default=None)
    if own is not None:
        return own, True
    if container.duration:
        start = container.start_time / av.time_base if container.start_time is not None else 0.0
        return container.duration / av.time_base + start - origin, False
    return None, False


def _packet_span(path: str, stream_index: int, origin: float) -> float:
    """End of the last video packet (demux only, no decode): the duration when nothing declares one.
    Streams without timestamps (raw elementary streams) count packets at the guessed frame rate."""
    end, count = 0.0, 0
    with av.open(url(path)) as container:
        stream = container.streams[stream_index]
        tb = stream.time_base
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                count += 1
                t = packet.pts if packet.pts is not None else packet.dts
                if t is not None and tb is not None:
                    end = max(end, float((t + (packet.duration or 0)) * tb) - origin)
        except (av.FFmpegError, EOFError):
            pass
        rate = stream.average_rate or stream.guessed_rate
    if end <= 0 and count and rate:
        end = count / float(rate)
    return end


def _tag_rotation(stream) -> int:
    """Legacy 'rotate' tag (clockwise degrees, as phones wrote it) -> counter-clockwise degrees."""
    for key, value in stream.metadata.items():
        if key.lower() == 'rotate':
            try:
                return -int(float(value))
            except ValueError:
                return 0
    return 0


def _norm_rotation(ccw: float) -> int:
    return int(round(ccw / 90.0)) % 4 * 90


def _display_size(width: int, height: int, sar, rotation: int) -> tuple[int, int]:
    if sar is not None and sar.numerator > 0 and sar.denominator > 0 and sar != 1:
        width = max(1, int(round(width * float(sar))))
    return (height, width) if rotation in (90, 270) else (width, height)


def _stream_origin(stream) -> float | None:
    return _seconds(stream.start_time, stream.time_base)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Describe the video in ``path`` (opens it and decodes its first frame for the rotation).

    Raises MediaError for missing, empty, non-video, video-less or unopenable files; probe does not prove
    the whole file decodes (``decode_clip`` does).
    """
    path = os.fspath(path)
    container, stream = open_video(path)
    with container:
        first = None
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except (av.FFmpegError, EOFError):
            pass
        if first is None:
            family, state = structure(path)
            raise MediaError('no_frames' if state == 'ok' else state, path,
                             f"no decodable video frame ({family or 'unknown'} container: {state})")
        origin = _stream_origin(stream)
        if origin is None:
            origin = _seconds(first.pts, first.time_base) or 0.0
        return _make_info(container, stream, first, _duration(path, container, stream, origin)[0], origin)


def _make_info(container, stream, first, duration: float, origin: float) -> VideoInfo:
    rotation = _norm_rotation(first.rotation or _tag_rotation(stream))
    width, height = _display_size(first.width, first.height, stream.sample_aspect_ratio, rotation)
    fps = float(stream.average_rate) if stream.average_rate else (
        float(stream.guessed_rate) if stream.guessed_rate else 0.0)
    return VideoInfo(duration=float(duration), fps=fps, width=width, height=height, rotation=rotation,
                     has_audio=bool(container.streams.audio), codec=stream.codec_context.name,
                     num_frames=int(stream.frames or 0), start_time=float(origin))


def _duration(path: str, container, stream, origin: float) -> tuple[float, float | None, bool]:
    """(duration to sample over, declared duration or None, whether it is the video stream's own).

    Without a duration of the video stream's own (the container's may include a longer audio track), the
    video packets are scanned (demux only) for where the video ends."""
    declared, own = _declared_duration(container, stream, origin)
    if own:
        return declared, declared, own
    span = _packet_span(path, stream.index, origin)
    return (span if span > 0 else (declared or 0.0)), declared, own


# ----------------------------------------------------------------------------------------------- decoding
def _to_rgb(frame, width: int, height: int, rotation: int) -> np.ndarray:
    """Upright RGB ``height x width`` array; ``width/height`` are the upright (displayed) sizes."""
    stored_w, stored_h = (height, width) if rotation in (90, 270) else (width, height)
    rgb = frame.to_ndarray(width=stored_w, height=stored_h, format='rgb24', interpolation='AREA')
    if rotation:
        rgb = np.rot90(rgb, rotation // 90)
    return np.ascontiguousarray(rgb)


def _tubelet_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


class _Anchor:
    """One sampled frame: its square picture and the tubelet frames collected so far (RGB arrays only, so
    no decoder buffer outlives its turn)."""
    __slots__ = ('index', 'time', 'square', 'tubelet')

    def __init__(self, index, time, square, first):
        self.index, self.time, self.square, self.tubelet = index, time, square, [first]


def decode_clip(path: str | os.PathLike, num_frames: int, *, frame_size: int, mode: str = 'uniform',
                rng: np.random.Generator | None = None, tubelet_length: int = 4, tubelet_max_side: int = 512,
                threads: int = 2) -> DecodedClip:
    """Decode ``path`` once and return T' <= num_frames sampled frames with their tubelets.

    Sample times come from ``sample_times(declared duration, num_frames, mode, rng)``; each is served by the
    nearest decoded frame not already used by an earlier sample (so anchors are distinct frames in time
    order). T' = num_frames unless the clip has fewer distinct frames to give (very short clips, or
    sparse variable-rate stretches at the end); the pipeline pads and masks. ``timestamps`` are the chosen
    frames' true presentation times. Tubelet k of anchor i is the native frame ``frame_indices[i] + k``.
    """
    if tubelet_length < 1:
        raise ValueError(f"tubelet_length must be >= 1, got {tubelet_length}")
    path = os.fspath(path)
    container, stream = open_video(path)
    with container:
        stream.thread_type = 'AUTO'
        stream.thread_count = max(1, int(threads))
        tb = stream.time_base
        origin = _stream_origin(stream)
        duration, declared, own = _duration(path, container, stream, origin or 0.0)
        targets = sample_times(duration, num_frames, mode, rng)
        K = tubelet_length

        anchors: list[_Anchor] = []
        open_anchors: list[_Anchor] = []     # tubelets still collecting frames
        prev = None                          # (index, time, av frame)
        info = None
        size = None                          # upright tubelet (w, h)
        last_used, i, j = -1, 0, -1
        last_t, frame_dur = 0.0, 0.0
        decode_errors, demux_error = 0, None

        def start(idx, t, frame):
            nonlocal last_used
            # the whole frame squashed to a square (rotation after the resize: same result for a square)
            a = _Anchor(idx, t, _to_rgb(frame, frame_size, frame_size, info.rotation),
                        _to_rgb(frame, size[0], size[1], info.rotation))
            anchors.append(a)
            if K > 1:
                open_anchors.append(a)
            last_used = idx

        def frames():
            nonlocal decode_errors, demux_error
            try:
                for packet in container.demux(stream):
                    try:
                        yield from packet.decode()
                    except (av.InvalidDataError, av.error.PatchWelcomeError):  # one bad packet: skip it
                        decode_errors += 1
            except (av.FFmpegError, EOFError) as e:
                demux_error = e

        for frame in frames():
            j += 1
            if info is None:
                if origin is None:
                    origin = _seconds(frame.pts, tb) or 0.0
                info = _make_info(container, stream, frame, duration, origin)
                size = _tubelet_size(info.width, info.height, tubelet_max_side)
            pts = frame.pts if frame.pts is not None else frame.dts
            if pts is not None:
                t = float(pts * tb) - origin
                t = max(t, last_t) if j else t      # broken files: keep time monotonic
            else:                                   # no timestamps at all (raw streams): the nominal rate
                t = last_t + (1.0 / info.fps if info.fps else 0.0) if j else 0.0
            last_t = t
            frame_dur = float(frame.duration * tb) if frame.duration else (1.0 / info.fps if info.fps else 0.0)

            while i < num_frames and t >= targets[i]:
                if prev is not None and prev[0] > last_used and targets[i] - prev[1] <= t - targets[i] + 1e-6:
                    start(*prev)
                elif j > last_used:
                    start(j, t, frame)
                else:
                    break                            # this frame is taken: the next one is the nearest free
                i += 1
            if open_anchors:
                rgb = None
                for a in open_anchors:
                    if a.index < j:
                        if rgb is None:
                            rgb = _to_rgb(frame, size[0], size[1], info.rotation)
                        a.tubelet.append(rgb)
                open_anchors = [a for a in open_anchors if len(a.tubelet) < K]
            prev = (j, t, frame)
        if prev is not None and i < num_frames and prev[0] > last_used:
            start(*prev)

        n_decoded = j + 1
        if n_decoded == 0:
            family, state = structure(path)
            if state != 'ok':
                raise MediaError(state, path, f"{family} file is {state}: no frame decoded")
            if decode_errors or demux_error is not None:
                raise MediaError('corrupt', path, f"no frame decoded ({decode_errors} undecodable packets, "
                                 f"read error: {demux_error})")
            raise MediaError('no_frames', path, "the video stream holds no frames")

        decoded_end = last_t + frame_dur
        check_complete(path, declared, own, decoded_end, frame_dur, n_decoded, decode_errors, demux_error)

        frames_out = np.stack([a.square for a in anchors])
        tub = np.zeros((len(anchors), K, size[1], size[0], 3), np.uint8)
        mask = np.zeros((len(anchors), K), bool)
        for n, a in enumerate(anchors):
            tub[n, :len(a.tubelet)] = np.stack(a.tubelet)
            mask[n, :len(a.tubelet)] = True
        return DecodedClip(frames=frames_out,
                           timestamps=np.asarray([a.time for a in anchors], np.float32),
                           frame_indices=np.asarray([a.index for a in anchors], np.int64),
                           tubelets=tub, tubelet_mask=mask, info=info, decoded_duration=float(decoded_end))
