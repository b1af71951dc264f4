"""What an upload must be: the server's limits, the checks made before any work, and the messages a web user
reads when an upload is refused (named by the uploaded file, never by a server path or a CLI flag)."""
from __future__ import annotations

import dataclasses
import os
import re

from microemo_jax.data import video as video_lib
from microemo_jax.data.raw.files import SUBTITLE_EXTENSIONS, VIDEO_EXTENSIONS
from microemo_jax.inference.videos import PredictError, find_videos


class ServeError(ValueError):
    """An upload or a setting the server cannot use; the message is shown to the user as is."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """What this server accepts (the --max-upload-mb, --max-seconds and --require-faces flags)."""
    max_upload_mb: float = 200.0
    max_seconds: float = 300.0
    require_faces: bool = False


def check(video, subtitles, limits: Limits):
    """A RawClip for an upload, or ServeError saying what is wrong with it (by the uploaded file's name).
    Cheap checks first: no upload is decoded before its size and type pass."""
    video, subtitles = _path(video), _path(subtitles)
    if not video:
        raise ServeError('Upload a video (or pick a held-out clip) first.')
    name = os.path.basename(video)
    if not os.path.isfile(video):
        raise ServeError(f'{name}: the upload is gone from the server; upload it again.')
    size_mb = os.path.getsize(video) / 1e6
    if size_mb > limits.max_upload_mb:
        raise ServeError(f'{name} is {size_mb:.1f} MB; this server takes videos up to '
                         f'{limits.max_upload_mb:g} MB (--max-upload-mb).')
    if not name.lower().endswith(VIDEO_EXTENSIONS):
        raise ServeError(f"{name} is not a video file this demo reads: upload a {', '.join(VIDEO_EXTENSIONS)} "
                         f"file (subtitles go in the subtitles box).")
    if subtitles and not subtitles.lower().endswith(SUBTITLE_EXTENSIONS):
        raise ServeError(f"{os.path.basename(subtitles)} is not a subtitle file: use .srt or .vtt timed "
                         f"subtitles, or leave the box empty.")
    try:
        info = video_lib.probe(video)
    except video_lib.MediaError as e:
        raise ServeError(readable(f'{name} cannot be read as a video: {e.detail}. Upload a video file '
                                  f'({", ".join(VIDEO_EXTENSIONS)}).', video, None)) from None
    except Exception as e:  # noqa: BLE001  (any decoder failure is the upload's problem, not the server's)
        raise ServeError(readable(f'{name} cannot be read as a video ({type(e).__name__}: {e}).', video,
                                  None)) from None
    if info.duration > limits.max_seconds:
        raise ServeError(f'{name} is {info.duration:.1f} s long; this server explains clips up to '
                         f'{limits.max_seconds:g} s (--max-seconds). Cut it shorter and upload again.')
    try:
        clip, = find_videos(video, subtitles)
    except PredictError as e:
        raise ServeError(readable(str(e), video, subtitles)) from None
    return clip


def _path(value) -> str | None:
    """A file path from what Gradio passes (a path, a FileData-like dict, or an object with .path/.name)."""
    if value is None or value == '':
        return None
    if isinstance(value, (list, tuple)):
        return _path(value[0]) if value else None
    if isinstance(value, dict):
        return value.get('path') or value.get('name') or (_path(value.get('video')) if 'video' in value else None)
    return getattr(value, 'path', None) or getattr(value, 'name', None) or os.fspath(value)


def readable(message: str, video: str | None, subtitles: str | None) -> str:
    """predict's messages name server paths and CLI flags; the web user knows the uploaded file names."""
    for path in (video, subtitles):
        if path:
            message = message.replace('file:' + path, path).replace(path, os.path.basename(path))
    message = re.sub(r'\[Errno -?\d+\] ', '', message)  # FFmpeg's error numbers mean nothing to a web user
    return message.replace('--subtitles ', 'subtitles ').replace('--video ', '')
