"""Decode a video once with PyAV into T sampled frames (true timestamps) and the K-frame tubelets behind them.

Why this shape: the frame branch needs T frames with the time they were shown (the timestamp tokens say
"This frame is sampled at {t} second."), and the micro-expression branch needs, at each of those anchors,
K *consecutive native-rate* frames (a micro-expression lasts < 0.5 s, so stride matters). Both come out of
one sequential, threaded decode; only the frames that are kept are converted to RGB. Micro-expression
spotting (``micro_expression.tubelets='apex'``) also keeps a small grey picture of every frame
(``motion_side``) and then moves each tubelet to its interval's peak of facial motion with a second
decode (``move_tubelets``).

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
``container.py`` opens files and tells why one is unusable; ``video_info.py`` reads what a stream declares.
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

from microemo_jax.data.raw.container import REASONS, MediaError, check_complete, open_video, structure
from microemo_jax.data.video_info import VideoInfo, make_info, probe, sample_duration, seconds, stream_origin

__all__ = ['REASONS', 'MediaError', 'VideoInfo', 'DecodedClip', 'sample_times', 'probe', 'decode_clip',
           'move_tubelets']


@dataclasses.dataclass(frozen=True)
class DecodedClip:
    """T' sampled frames of one clip and the K-frame tubelets that go with them.

    frames         uint8 (T', frame_size, frame_size, 3)  RGB, whole frame squashed to a square
    timestamps     float32 (T',)    true presentation time (seconds from time zero) of each frame
    frame_indices  int64 (T',)      index of each anchor among the decoded frames (presentation order)
    tubelets       uint8 (T', K, h, w, 3)  K consecutive native-rate frames per anchor, upright, longer side
                                    <= tubelet_max_side (zeros where ``tubelet_mask`` is False); from the
                                    anchor itself, unless ``move_tubelets`` placed them elsewhere
    tubelet_mask   bool (T', K)     which tubelet frames exist (False only at the end of the clip)
    info           VideoInfo
    decoded_duration  float         end of the last decoded frame (pts + its duration), seconds
    tubelet_starts int64 (T',)      index of each tubelet's first frame (None: ``frame_indices``)
    tubelet_times  float32 (T', K)  presentation time of each tubelet frame (0 where masked)
    frame_times    float32 (N,)     with ``motion_side``: the time of every decoded frame ...
    thumbnails     uint8 (N, h, w)  ... and its grey picture, longer side <= motion_side (spotting.py)
    """
    frames: np.ndarray
    timestamps: np.ndarray
    frame_indices: np.ndarray
    tubelets: np.ndarray
    tubelet_mask: np.ndarray
    info: VideoInfo
    decoded_duration: float
    tubelet_starts: np.ndarray | None = None
    tubelet_times: np.ndarray | None = None
    frame_times: np.ndarray | None = None
    thumbnails: np.ndarray | None = None

    def __post_init__(self):
        if self.tubelet_starts is None:
            object.__setattr__(self, 'tubelet_starts', np.asarray(self.frame_indices, np.int64).copy())
        if self.tubelet_times is None:      # made by hand: the anchor, then the nominal rate
            step = 1.0 / self.info.fps if self.info.fps else 0.0
            k = self.tubelet_mask.shape[1]
            times = np.asarray(self.timestamps, np.float32)[:, None] + step * np.arange(k, dtype=np.float32)
            object.__setattr__(self, 'tubelet_times', np.where(self.tubelet_mask, times, 0.0).astype(np.float32))

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
    """One sampled frame: its square picture and the tubelet frames collected so far with their times (RGB
    arrays only, so no decoder buffer outlives its turn)."""
    __slots__ = ('index', 'time', 'square', 'tubelet', 'times')

    def __init__(self, index, time, square, first):
        self.index, self.time, self.square, self.tubelet, self.times = index, time, square, [first], [time]


def _to_grey(frame, width: int, height: int, rotation: int) -> np.ndarray:
    """Upright grey ``height x width`` picture (spotting's thumbnails)."""
    stored_w, stored_h = (height, width) if rotation in (90, 270) else (width, height)
    grey = frame.to_ndarray(width=stored_w, height=stored_h, format='gray', interpolation='AREA')
    return np.ascontiguousarray(np.rot90(grey, rotation // 90) if rotation else grey)


class _TimedFrames:
    """A stream's decoded frames in presentation order with their times: ``for j, t, frame in timed``.

    t is seconds from time zero (``origin``; None: the first frame's pts), kept monotonic in broken files,
    and counted at the nominal rate for streams without timestamps. Single undecodable packets are skipped
    and counted (``decode_errors``); a read error ends the frames (``demux_error``). ``info`` is the
    stream's VideoInfo from its first frame on (given, or made with ``duration``); ``last_t`` and
    ``frame_dur`` describe the last frame yielded."""

    def __init__(self, container, stream, origin: float | None, duration: float, info: VideoInfo | None = None):
        self.container, self.stream, self.origin, self.duration, self.info = container, stream, origin, duration, info
        self.decode_errors, self.demux_error = 0, None
        self.last_t, self.frame_dur, self.count = 0.0, 0.0, 0

    def _frames(self):
        try:
            for packet in self.container.demux(self.stream):
                try:
                    yield from packet.decode()
                except (av.InvalidDataError, av.error.PatchWelcomeError):  # one bad packet: skip it
                    self.decode_errors += 1
        except (av.FFmpegError, EOFError) as e:
            self.demux_error = e

    def __iter__(self):
        tb = self.stream.time_base
        for frame in self._frames():
            j = self.count
            if j == 0:
                if self.origin is None:
                    self.origin = seconds(frame.pts, tb) or 0.0
                if self.info is None:
                    self.info = make_info(self.container, self.stream, frame, self.duration, self.origin)
            fps = self.info.fps
            pts = frame.pts if frame.pts is not None else frame.dts
            if pts is not None:
                t = float(pts * tb) - self.origin
                t = max(t, self.last_t) if j else t      # broken files: keep time monotonic
            else:                                        # no timestamps at all (raw streams): the nominal rate
                t = self.last_t + (1.0 / fps if fps else 0.0) if j else 0.0
            self.last_t = t
            self.frame_dur = float(frame.duration * tb) if frame.duration else (1.0 / fps if fps else 0.0)
            self.count += 1
            yield j, t, frame


def decode_clip(path: str | os.PathLike, num_frames: int, *, frame_size: int, mode: str = 'uniform',
                rng: np.random.Generator | None = None, tubelet_length: int = 4, tubelet_max_side: int = 512,
                threads: int = 2, motion_side: int = 0) -> DecodedClip:
    """Decode ``path`` once and return T' <= num_frames sampled frames with their tubelets.

    Sample times come from ``sample_times(declared duration, num_frames, mode, rng)``; each is served by the
    nearest decoded frame not already used by an earlier sample (so anchors are distinct frames in time
    order). T' = num_frames unless the clip has fewer distinct frames to give (very short clips, or
    sparse variable-rate stretches at the end); the pipeline pads and masks. ``timestamps`` are the chosen
    frames' true presentation times. Tubelet k of anchor i is the native frame ``frame_indices[i] + k``.
    ``motion_side`` > 0 also keeps every decoded frame as a small grey picture (longer side <= motion_side:
    ~9 KB a frame at 96) with its time, for micro-expression spotting (data/faces/spotting.py).
    """
    if tubelet_length < 1:
        raise ValueError(f"tubelet_length must be >= 1, got {tubelet_length}")
    path = os.fspath(path)
    container, stream = open_video(path)
    with container:
        stream.thread_type = 'AUTO'
        stream.thread_count = max(1, int(threads))
        origin = stream_origin(stream)
        duration, declared, own = sample_duration(path, container, stream, origin or 0.0)
        targets = sample_times(duration, num_frames, mode, rng)
        K = tubelet_length
        timed = _TimedFrames(container, stream, origin, duration)

        anchors: list[_Anchor] = []
        open_anchors: list[_Anchor] = []     # tubelets still collecting frames
        prev = None                          # (index, time, av frame)
        size = None                          # upright tubelet (w, h)
        last_used, i = -1, 0
        thumbs, thumb_times, thumb_size = [], [], None

        def start(idx, t, frame):
            nonlocal last_used
            # the whole frame squashed to a square (rotation after the resize: same result for a square)
            a = _Anchor(idx, t, _to_rgb(frame, frame_size, frame_size, timed.info.rotation),
                        _to_rgb(frame, size[0], size[1], timed.info.rotation))
            anchors.append(a)
            if K > 1:
                open_anchors.append(a)
            last_used = idx

        for j, t, frame in timed:
            info = timed.info
            if size is None:
                size = _tubelet_size(info.width, info.height, tubelet_max_side)
                thumb_size = _tubelet_size(info.width, info.height, motion_side) if motion_side > 0 else None
            if thumb_size is not None:
                thumbs.append(_to_grey(frame, thumb_size[0], thumb_size[1], info.rotation))
                thumb_times.append(t)

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
                        a.times.append(t)
                open_anchors = [a for a in open_anchors if len(a.tubelet) < K]
            prev = (j, t, frame)
        if prev is not None and i < num_frames and prev[0] > last_used:
            start(*prev)

        n_decoded = timed.count
        if n_decoded == 0:
            family, state = structure(path)
            if state != 'ok':
                raise MediaError(state, path, f"{family} file is {state}: no frame decoded")
            if timed.decode_errors or timed.demux_error is not None:
                raise MediaError('corrupt', path, f"no frame decoded ({timed.decode_errors} undecodable packets, "
                                 f"read error: {timed.demux_error})")
            raise MediaError('no_frames', path, "the video stream holds no frames")

        decoded_end = timed.last_t + timed.frame_dur
        check_complete(path, declared, own, decoded_end, timed.frame_dur, n_decoded, timed.decode_errors,
                       timed.demux_error)

        frames_out = np.stack([a.square for a in anchors])
        tub = np.zeros((len(anchors), K, size[1], size[0], 3), np.uint8)
        mask = np.zeros((len(anchors), K), bool)
        tub_times = np.zeros((len(anchors), K), np.float32)
        for n, a in enumerate(anchors):
            tub[n, :len(a.tubelet)] = np.stack(a.tubelet)
            mask[n, :len(a.tubelet)] = True
            tub_times[n, :len(a.times)] = a.times
        return DecodedClip(frames=frames_out,
                           timestamps=np.asarray([a.time for a in anchors], np.float32),
                           frame_indices=np.asarray([a.index for a in anchors], np.int64),
                           tubelets=tub, tubelet_mask=mask, info=timed.info, decoded_duration=float(decoded_end),
                           tubelet_times=tub_times,
                           frame_times=np.asarray(thumb_times, np.float32) if thumb_size else None,
                           thumbnails=np.stack(thumbs) if thumbs else None)


def move_tubelets(path: str | os.PathLike, clip: DecodedClip, starts, *, threads: int = 2) -> DecodedClip:
    """``clip`` with tubelet i made of the K native frames from frame ``starts[i]`` on (micro-expression
    spotting puts them at the peak of facial motion between anchors: data/faces/spotting.py).

    A second decode of ``path`` that keeps only those frames (at the tubelet size), counted and timed as
    ``decode_clip`` counted them; a tubelet that runs past the clip's last frame is masked there. Keeping
    every frame of the first decode instead would hold a whole video at tubelet size in memory."""
    starts = np.asarray(starts, np.int64).reshape(-1)
    n, k, h, w = clip.tubelets.shape[:4]
    if starts.shape != (n,) or (starts < 0).any():
        raise ValueError(f"move_tubelets needs one frame index >= 0 per tubelet ({n}), got {starts.tolist()}")
    wanted: dict[int, list[tuple[int, int]]] = {}
    for i, first in enumerate(starts):
        for q in range(k):
            wanted.setdefault(int(first) + q, []).append((i, q))
    tub = np.zeros_like(clip.tubelets)
    mask = np.zeros((n, k), bool)
    times = np.zeros((n, k), np.float32)
    container, stream = open_video(os.fspath(path))
    with container:
        stream.thread_type = 'AUTO'
        stream.thread_count = max(1, int(threads))
        for j, t, frame in _TimedFrames(container, stream, stream_origin(stream), clip.info.duration, clip.info):
            if j in wanted:
                rgb = _to_rgb(frame, w, h, clip.info.rotation)
                for i, q in wanted.pop(j):
                    tub[i, q], mask[i, q], times[i, q] = rgb, True, t
            if not wanted:
                break
    return dataclasses.replace(clip, tubelets=tub, tubelet_mask=mask, tubelet_starts=starts, tubelet_times=times)
