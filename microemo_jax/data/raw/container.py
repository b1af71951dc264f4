"""Open a media file as a video container, or say precisely why it cannot be used (``MediaError``).

PyAV (libavformat) tells that a file does not open or decode, not why: an interrupted download and a
file with garbage after its header both fail with "Invalid data found" or "moov atom not found". The
file's own size fields tell them apart, so for the three families people's clips come in (mp4/mov,
AVI, Matroska/WebM) the top-level elements are walked, reading a few bytes each: a size that runs past
the end of the file means 'truncated'; an element name that cannot be one means 'corrupt'. Everything
else is left to PyAV.

Truncation policy: a file whose decodable video ends clearly before the duration its header declares
(more than 10% of it and more than two frames short) is rejected as 'truncated' (the file is shorter than
its own structure says) or 'corrupt' (it is not, yet data is missing or undecodable): its labels,
subtitles and audio describe the whole clip, so half the pictures would teach the model wrong
explanations. A file that lacks less than that (a cut-off tail) is decoded with what is there
(``video.DecodedClip.decoded_duration`` tells how much). Single undecodable packets inside an otherwise
complete stream are skipped, as ffmpeg does.
"""
from __future__ import annotations

import os
import struct

import av

REASONS = ('missing_file', 'zero_bytes', 'not_a_video', 'no_video_stream', 'corrupt', 'truncated', 'no_frames')

_MAX_MISSING_FRACTION = 0.10   # of the declared video duration, before a file counts as truncated/corrupt

# Demuxers (libavformat names) whose files may legitimately hold video: openable without a video stream
# means 'no_video_stream'. Anything else without video (wav, mp3, flac, srt, ...) is 'not_a_video'.
_VIDEO_CONTAINERS = {'mov', 'mp4', 'm4a', '3gp', '3g2', 'mj2', 'matroska', 'webm', 'avi', 'flv', 'mpegts',
                     'mpeg', 'asf', 'nut', 'mxf', 'ogg', 'rm', 'dv', 'ivf', 'h264', 'hevc', 'm4v'}
# Demuxers that open still images or text as a one-frame "video": not videos for this pipeline.
_NOT_VIDEO_FORMATS = {'image2', 'tty', 'gif_pipe', 'apng'}
# The IDs a Matroska Segment's top-level children may have (SeekHead, Info, Tracks, Cluster, Cues, ...).
_MKV_SEGMENT_CHILDREN = {0x114D9B74, 0x1549A966, 0x1654AE6B, 0x1F43B675, 0x1C53BB6B, 0x1941A469,
                         0x1043A770, 0x1254C367, 0x1B538667, 0xEC, 0xBF}


class MediaError(Exception):
    """A file that cannot be used, with a short machine-readable ``reason`` (one of REASONS)."""

    def __init__(self, reason: str, path: str | os.PathLike, detail: str):
        self.reason = reason
        self.path = os.fspath(path)
        self.detail = detail
        super().__init__(f"{self.path}: {detail} [{reason}]")


def _signature(head: bytes) -> str | None:
    """The container family recognisable from the first bytes, or None."""
    if len(head) >= 8 and head[4:8] in (b'ftyp', b'moov', b'mdat', b'free', b'wide', b'skip', b'pnot'):
        return 'mp4'
    if head[:4] == b'RIFF' and head[8:12] in (b'AVI ', b'AVIX'):
        return 'avi'
    if len(head) >= 377 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return 'mpegts'
    magic = {b'\x1a\x45\xdf\xa3': 'matroska', b'\x30\x26\xb2\x75': 'asf', b'OggS': 'ogg', b'\x00\x00\x01\xba': 'mpeg'}
    return magic.get(head[:4], 'flv' if head[:3] == b'FLV' else None)


def _printable(tag: bytes) -> bool:
    return all(32 <= b < 127 or b == 0xA9 for b in tag)   # 0xA9: '©' in QuickTime atom names


def _check_mp4(f, size: int) -> str:
    """Top-level boxes: 32-bit size (1: a 64-bit one follows; 0: to the end of the file) and a type."""
    pos = 0
    while pos + 8 <= size:
        f.seek(pos)
        box, kind = struct.unpack('>I4s', f.read(8))
        if box == 1:
            box = struct.unpack('>Q', f.read(8))[0]
        elif box == 0:
            return 'ok'
        if box < 8 or not _printable(kind):
            return 'corrupt'
        pos += box
    return 'ok' if pos == size else 'truncated'


def _check_riff(f, size: int) -> str:
    """The RIFF size, then chunks of id, little-endian size and data padded to an even length."""
    f.seek(4)
    end = 8 + struct.unpack('<I', f.read(4))[0]
    if end > size:
        return 'truncated'
    pos = 12
    while pos + 8 <= end:
        f.seek(pos)
        cid, csize = struct.unpack('<4sI', f.read(8))
        if not _printable(cid):
            return 'corrupt'
        pos += 8 + csize + (csize & 1)
    return 'ok' if pos <= size + 1 else 'truncated'


def _element(f) -> tuple[int, int, bool] | None:
    """The next EBML element header: (ID, data size, whether the size is "unknown"), None if malformed."""
    out = []
    for keep_marker in (True, False):
        first = f.read(1)
        length = 9 - first[0].bit_length() if first else 9   # leading zero bits + 1
        rest = f.read(length - 1) if length <= 8 else b''
        if length > 8 or len(rest) != length - 1:
            return None
        value = int.from_bytes(first + rest, 'big')
        out.append((value if keep_marker else value & ((1 << 7 * length) - 1), length))
    (elem, _), (data, length) = out
    return elem, data, data == (1 << 7 * length) - 1     # all ones: unknown length (live recordings)


def _check_matroska(f, size: int) -> str:
    """The EBML header, then the Segment and its children (unknown sizes of live recordings accepted)."""
    f.seek(0)
    header = _element(f)
    if header is None:
        return 'truncated'
    f.seek(f.tell() + header[1])
    segment = _element(f)
    if segment is None:
        return 'truncated'
    if segment[0] != 0x18538067:
        return 'corrupt'
    pos, end = f.tell(), size if segment[2] else f.tell() + segment[1]
    if end > size:
        return 'truncated'
    while pos < end:
        f.seek(pos)
        child = _element(f)
        if child is None:
            return 'truncated'
        if child[0] not in _MKV_SEGMENT_CHILDREN:
            return 'corrupt'
        if child[2]:                                 # live-streamed cluster: no size to check
            return 'ok'
        pos = f.tell() + child[1]
        if pos > size:
            return 'truncated'
    return 'ok'


def structure(path: str) -> tuple[str | None, str]:
    """(container family or None, 'ok' | 'truncated' | 'corrupt') from the file's own size fields.

    Only mp4/mov, AVI and Matroska/WebM are walked; other families report 'ok'.
    """
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        family = _signature(f.read(512))
        check = {'mp4': _check_mp4, 'avi': _check_riff, 'matroska': _check_matroska}.get(family)
        try:
            return family, check(f, size) if check else 'ok'
        except (struct.error, OSError):
            return family, 'truncated'


def bad_file_reason(path: str) -> str:
    """'truncated' / 'corrupt' when the structure says so, else 'corrupt' (for files whose media fails)."""
    return 'truncated' if structure(path)[1] == 'truncated' else 'corrupt'


def url(path: str) -> str:
    """An explicit file: URL, so names like 'http:x.mp4' or 'a:b.mp4' are never read as other protocols."""
    return 'file:' + os.path.abspath(path)


def open_video(path: str | os.PathLike):
    """Open ``path`` and return (container, video stream); raise MediaError for everything unusable."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MediaError('missing_file', path, "no such file")
    if not os.path.isfile(path):
        raise MediaError('missing_file', path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise MediaError('zero_bytes', path, "file is empty (0 bytes): re-download or remove it")
    try:
        container = av.open(url(path))
    except (av.FFmpegError, EOFError, UnicodeDecodeError, ValueError) as e:
        family, state = structure(path)
        if family is None:
            raise MediaError('not_a_video', path, f"not a recognised video container ({e})") from None
        reason = 'truncated' if state == 'truncated' else 'corrupt'
        raise MediaError(reason, path, f"{family} file cannot be opened: {state}, {e}") from None
    fmt = set(container.format.name.split(','))
    if fmt & _NOT_VIDEO_FORMATS or any(name.endswith('_pipe') for name in fmt):
        container.close()
        raise MediaError('not_a_video', path, f"a still image or text ({container.format.name}), not a video")
    videos = [v for v in container.streams.video if not v.disposition & av.stream.Disposition.attached_pic]
    if not videos:                                   # cover art in a music file is not a video either
        container.close()
        family, state = structure(path)
        if state != 'ok':
            raise MediaError(state, path, f"{family} file is {state} and shows no video stream")
        if fmt & _VIDEO_CONTAINERS:
            raise MediaError('no_video_stream', path, f"{container.format.name} file has no video stream "
                             f"(audio only?)")
        raise MediaError('not_a_video', path, f"{container.format.name} media file has no video stream")
    return container, videos[0]


def check_complete(path, declared, own, decoded_end, frame_dur, n_decoded, decode_errors, demux_error):
    """Apply the truncation policy of the module docstring to a decoded video stream."""
    if declared is None or declared <= 0:
        if demux_error is not None:
            raise MediaError(bad_file_reason(path), path, f"read error after {n_decoded} frames and no declared "
                             f"duration to check against: {demux_error}")
        return
    missing = declared - decoded_end
    allowed = max(_MAX_MISSING_FRACTION * declared, 2 * frame_dur)
    if not own:                     # container duration only: may include a longer audio track
        allowed = max(allowed, 0.5 * declared)
    if missing > allowed:
        reason = bad_file_reason(path)
        raise MediaError(reason, path, f"video decodes to {decoded_end:.2f} s of a declared {declared:.2f} s "
                         f"({n_decoded} frames, {decode_errors} undecodable packets"
                         f"{', read error: ' + str(demux_error) if demux_error else ''})")
