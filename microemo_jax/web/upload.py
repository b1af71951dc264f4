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


# An absolute path (POSIX, ~/, or a drive), not one inside a URL or a relative path; and an object's repr.
_ABS_PATH = re.compile(r"(?<![\w.:/\\~])(?:~|[A-Za-z]:)?(?:[/\\][^\s'\"`,;:()\[\]{}<>|/\\]*)+")
_OBJECT_REPR = re.compile(r"<[^<>\n]*? at 0x[0-9a-fA-F]+>")
PUBLIC_TEXT_CHARS = 500


def public_text(message) -> str:
    """What a web user may read of a message: its text without a traceback, without server paths (a file's
    name instead), without an object's repr, on one line and not too long."""
    text = str(message).split('Traceback (most recent call last)', 1)[0]
    text = _OBJECT_REPR.sub('<object>', text)
    text = _ABS_PATH.sub(lambda m: re.split(r'[/\\]', m.group(0).rstrip('/\\'))[-1] or 'a folder', text)
    text = ' '.join(text.split())
    return text if len(text) <= PUBLIC_TEXT_CHARS else text[:PUBLIC_TEXT_CHARS - 3] + '...'


def public_name(path) -> str:
    """A file or folder as the page names it: its name, never the server path to it."""
    return os.path.basename(os.path.normpath(str(path))) if path else '?'


PATH_KEYS = ('video', 'timeline', 'params', 'subtitles')   # what predict's JSON holds as server paths


def public_result(result: dict) -> dict:
    """predict's JSON as the page and the /explain API show it: its files by name, not by server path."""
    return {k: public_name(v) if k in PATH_KEYS and isinstance(v, str) else v for k, v in result.items()}


def readable(message: str, video: str | None, subtitles: str | None) -> str:
    """predict's messages name server paths and CLI flags; the web user knows the uploaded file names."""
    for path in (video, subtitles):
        if path:
            message = message.replace('file:' + path, path).replace(path, os.path.basename(path))
    message = re.sub(r'\[Errno -?\d+\] ', '', message)  # FFmpeg's error numbers mean nothing to a web user
    return public_text(message.replace('--subtitles ', 'subtitles ').replace('--video ', ''))
