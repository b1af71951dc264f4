"""What a video stream declares: duration, frame rate, upright size, rotation (``probe`` and the helpers that
``video.decode_clip`` shares with it).

The conventions are video.py's: time zero is the video stream's start time (else the first frame's pts);
rotation (display matrix, else a legacy ``rotate`` tag) is rounded to a multiple of 90 degrees; non-square
pixels are stretched to square ones. Several declared durations may exist and the largest wins (demuxers
re-estimate some from what is on disk); without one of the video stream's own, the packets are scanned.
"""
from __future__ import annotations

import dataclasses
import os

import av

from microemo_jax.data.raw.container import MediaError, open_video, structure, url


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


def seconds(value, time_base) -> float | None:
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
    candidates = [seconds(stream.duration, stream.time_base), _tag_duration(stream)]
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


def stream_origin(stream) -> float | None:
    return seconds(stream.start_time, stream.time_base)


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
        origin = stream_origin(stream)
        if origin is None:
            origin = seconds(first.pts, first.time_base) or 0.0
        return make_info(container, stream, first, sample_duration(path, container, stream, origin)[0], origin)


def make_info(container, stream, first, duration: float, origin: float) -> VideoInfo:
    rotation = _norm_rotation(first.rotation or _tag_rotation(stream))
    width, height = _display_size(first.width, first.height, stream.sample_aspect_ratio, rotation)
    fps = float(stream.average_rate) if stream.average_rate else (
        float(stream.guessed_rate) if stream.guessed_rate else 0.0)
    return VideoInfo(duration=float(duration), fps=fps, width=width, height=height, rotation=rotation,
                     has_audio=bool(container.streams.audio), codec=stream.codec_context.name,
                     num_frames=int(stream.frames or 0), start_time=float(origin))


def sample_duration(path: str, container, stream, origin: float) -> tuple[float, float | None, bool]:
    """(duration to sample over, declared duration or None, whether it is the video stream's own).

    Without a duration of the video stream's own (the container's may include a longer audio track), the
    video packets are scanned (demux only) for where the video ends."""
    declared, own = _declared_duration(container, stream, origin)
    if own:
        return declared, declared, own
    span = _packet_span(path, stream.index, origin)
    return (span if span > 0 else (declared or 0.0)), declared, own
