"""Finding a raw folder's files: each clip name's video and side files, safe names, links that cannot be
opened or that lead out of the folder, and a ``Skip`` for every file that is not used.

Videos are ``DIR/video/NAME.ext`` or ``DIR/NAME.ext`` (ext in VIDEO_EXTENSIONS, any case); side files are
timed subtitles ``NAME.srt``/``NAME.vtt`` next to the video or in DIR, an utterance file
``NAME.utt.{json,csv,tsv,txt}`` (same places) or ``DIR/utterances/NAME.{json,csv,tsv,txt}``, audio
``DIR/audio/NAME.{wav,flac,mp3,m4a,ogg}`` and OpenFace crops ``DIR/openface_face/NAME/NAME.npy``. Names are
matched in Unicode NFC (``name_key``), so names from a csv find files that macOS stored decomposed.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import unicodedata

from microemo_jax.safe_paths import MAX_NAME_BYTES, unsafe_name_reason  # noqa: F401 (re-exported: sources)

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.webm', '.mov')
SUBTITLE_EXTENSIONS = ('.srt', '.vtt')
AUDIO_EXTENSIONS = ('.wav', '.flac', '.mp3', '.m4a', '.ogg')
UTTERANCE_EXTENSIONS = ('.json', '.csv', '.tsv', '.txt')


@dataclasses.dataclass
class Skip:
    name: str
    reason: str      # 'code: specifics', e.g. 'video_missing: no NAME.mp4/... under DIR'


# ---------------------------------------------------------------------------------------------- names
def _is_dir(entry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link loop
        return False


def name_key(name: str) -> str:
    """Lookup key: NFC, so names from a csv find files that macOS stored decomposed (NFD)."""
    return unicodedata.normalize('NFC', name)


# ---------------------------------------------------------------------------------------------- files
def link_problem(path: str) -> str | None:
    """Why ``path`` (a symbolic link, or inside one) cannot be opened: a loop or a dangling link; else None."""
    try:
        os.path.realpath(path, strict=True)
    except FileNotFoundError:
        try:
            target = os.readlink(path)
        except OSError:
            return 'is a dangling symbolic link'
        return f'is a dangling symbolic link (to {target!r}, which does not exist)'
    except OSError as e:
        if e.errno == errno.ELOOP:
            return 'is a symbolic link loop'
        return f'cannot be resolved ({e.strerror})'
    return None


def outside_problem(path: str, root: str) -> str | None:
    """Why a side file may not be read: it cannot be resolved, or it resolves outside ``root``; else None."""
    why = link_problem(path)
    if why:
        return why
    real, base = os.path.realpath(path), os.path.realpath(root)
    if os.path.commonpath([real, base]) != base:
        return f'is a symbolic link out of the raw folder (to {real}): refused, not followed'
    return None


class DirIndex:
    """One listing of a folder: NFC stem -> paths of files with the given extensions (any case).

    Symbolic links are listed like files (the caller checks them); entries that cannot be opened (a link
    loop, a dangling link) are kept apart in ``bad`` as (stem, path, why), never dropped silently, or with
    ``keep_bad`` listed like the others (side files: the clip is then refused with the reason).
    """

    def __init__(self, directory: str, extensions: tuple[str, ...], *, suffix: str = '', keep_bad: bool = False):
        self.by_key: dict[str, list[str]] = {}
        self.bad: list[tuple[str, str, str]] = []
        if not os.path.isdir(directory):
            return
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
        rank = {ext: i for i, ext in enumerate(extensions)}
        found = []
        for entry in entries:
            base, ext = os.path.splitext(entry.name)
            if ext.lower() not in rank:
                continue
            if suffix:
                if not base.endswith(suffix):
                    continue
                base = base[:-len(suffix)]
            try:
                is_file = entry.is_file()
            except OSError:  # e.g. ELOOP: a symbolic link loop
                is_file = False
            if not is_file:
                if entry.is_symlink():
                    self.bad.append((base, entry.path, link_problem(entry.path) or 'is not a file'))
                    if keep_bad:
                        found.append((rank[ext.lower()], base, entry.path))
                continue
            found.append((rank[ext.lower()], base, entry.path))
        for _, stem, path in sorted(found):
            self.by_key.setdefault(name_key(stem), []).append(path)

    def get(self, name: str) -> list[str]:
        return self.by_key.get(name_key(name), [])


class Finder:
    """Finds each name's video and side files under a raw directory; remembers which videos were used."""

    def __init__(self, raw_dir: str):
        self.raw_dir = raw_dir
        video_dir = os.path.join(raw_dir, 'video')
        self.video_dirs = [d for d in (video_dir, raw_dir) if os.path.isdir(d)]
        self.videos = [DirIndex(d, VIDEO_EXTENSIONS) for d in self.video_dirs]
        self.subtitles = {d: DirIndex(d, SUBTITLE_EXTENSIONS, keep_bad=True) for d in self.video_dirs}
        self.utterances = {d: DirIndex(d, UTTERANCE_EXTENSIONS, suffix='.utt', keep_bad=True) for d in self.video_dirs}
        self.utterance_dir = DirIndex(os.path.join(raw_dir, 'utterances'), UTTERANCE_EXTENSIONS, keep_bad=True)
        self.audio = DirIndex(os.path.join(raw_dir, 'audio'), AUDIO_EXTENSIONS, keep_bad=True)
        face_root = os.path.join(raw_dir, 'openface_face')
        self.face_dirs = ({name_key(e.name): e.path for e in os.scandir(face_root) if _is_dir(e)}
                          if os.path.isdir(face_root) else {})
        self.bad_videos = {path: (stem, why) for index in self.videos for stem, path, why in index.bad}
        self.used: set[str] = set()

    def candidates(self, name: str) -> list[str]:
        return [p for index in self.videos for p in index.get(name)]

    def all_videos(self) -> list[tuple[str, str]]:
        """(stem, path) of every video file found, in a stable order."""
        out = []
        for index in self.videos:
            for key in sorted(index.by_key):
                for path in index.by_key[key]:
                    out.append((os.path.splitext(os.path.basename(path))[0], path))
        return out

    def missing(self, name: str) -> str:
        exts = '/'.join(VIDEO_EXTENSIONS)
        where = ' or '.join(self.video_dirs) or self.raw_dir
        bad = [f'{os.path.basename(path)} {why}' for path, (stem, why) in self.bad_videos.items()
               if name_key(stem) == name_key(name)]
        for path, (stem, _) in list(self.bad_videos.items()):
            if name_key(stem) == name_key(name):
                del self.bad_videos[path]  # accounted for by this label's skip
        return f'video_missing: no {name}{exts} under {where}' + (f" ({'; '.join(bad)})" if bad else '')

    def bad_links(self) -> list[Skip]:
        """A Skip for every video-named entry that cannot be opened and no label row accounted for."""
        return [Skip(stem, f'bad_link: video file {path} {why}') for path, (stem, why) in self.bad_videos.items()]

    def side_files(self, name: str, video: str) -> dict:
        def first(paths):
            return paths[0] if paths else None
        video_dir = os.path.dirname(video)
        order = [video_dir] + [d for d in self.video_dirs if d != video_dir]
        subtitle = first([p for d in order if d in self.subtitles for p in self.subtitles[d].get(name)])
        utterance = first([p for d in order if d in self.utterances for p in self.utterances[d].get(name)]
                          + self.utterance_dir.get(name))
        faces = None
        face_dir = self.face_dirs.get(name_key(name))
        if face_dir is not None:
            npy = os.path.join(face_dir, os.path.basename(face_dir) + '.npy')
            faces = npy if os.path.isfile(npy) or os.path.islink(npy) else None
        return dict(subtitle_file=subtitle, utterance_file=utterance, audio_file=first(self.audio.get(name)),
                    faces_npy=faces)

    def locate(self, name: str) -> tuple[str | None, dict]:
        found = self.candidates(name)
        if not found:
            return None, {}
        self.used.add(found[0])
        return found[0], self.side_files(name, found[0])

    def leftovers(self, label_file: str, make_clip, taken: set[str], rejected=frozenset()) -> tuple[list, list[Skip]]:
        """(RawClips, Skips): account for every video file no label used: duplicate, unsafe, unlabeled (clip or
        skip). ``rejected``: name keys whose label row was refused; their videos are skipped, never clips."""
        clips, skips = [], []
        chosen: dict[str, str] = {}
        for stem, path in self.all_videos():
            chosen.setdefault(name_key(stem), self.candidates(stem)[0])
            if path in self.used:
                continue
            first = chosen[name_key(stem)]
            why = unsafe_name_reason(stem)
            if why:
                skips.append(Skip(stem, f'unsafe_name: video file {path!r}: name {why}'))
            elif first != path:
                skips.append(Skip(stem, f'duplicate_video: {path} has the same name as {first}, which is used instead'))
            elif name_key(stem) in rejected:
                skips.append(Skip(stem, f'no_label: video {path}: its row in {label_file} was refused (see that '
                                        f'row\'s skip), so it is not used'))
            elif make_clip is not None and stem in taken:
                skips.append(Skip(stem, f'duplicate_name: video {path} is named like a clip made from {label_file}'))
            elif make_clip is not None:
                self.used.add(path)
                clips.append(make_clip(stem, path))
            else:
                skips.append(Skip(stem, f'no_label: video {path} has no usable row in {label_file}'))
        return clips, skips
