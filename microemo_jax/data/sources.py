"""Raw dataset layouts -> a list of clips to prepare, and a list of everything skipped, with reasons.

Layouts (facts from the datasets' releases, see reference/peers.md §2a):

* ``emer_v1``: ``gt-eng.csv`` (names, emotions, subtitles, reasons); target: the reason (description).
* ``emer_v2``: ``final-EMER-reason.csv`` (name, chinese, english); target: english. Subtitles from
  ``subtitle_chieng.csv`` (name, english, ...) when present.
* ``mer_ov``: ``check-openset.csv`` (name, openset); target: the OV labels. Subtitles as above.
* ``mer2025``: ``subtitle_chieng.csv`` (required), ``track2_train_*.csv`` (name, openset) and
  ``track3_train_*.csv`` (name, reason), ``video/``, ``audio/NAME.wav``, ``openface_face/NAME/NAME.npy``.
* ``folder``: a user's own videos, one clip per file (name = file stem), optional ``NAME.srt``/``.vtt``
  and optional ``labels.csv`` (name, openset and/or reason).

For every layout, videos are ``DIR/video/NAME.ext`` or ``DIR/NAME.ext`` (ext in VIDEO_EXTENSIONS, any
case); and when present: timed subtitles ``NAME.srt``/``NAME.vtt`` next to the video or in DIR, an
utterance file ``NAME.utt.{json,csv,tsv,txt}`` (same places) or ``DIR/utterances/NAME.{json,csv,tsv,txt}``,
audio ``DIR/audio/NAME.{wav,flac,mp3,m4a,ogg}`` and OpenFace crops ``DIR/openface_face/NAME/NAME.npy``.

Targets: a name with both a description and OV labels gives two clips, ``NAME`` (description) and
``NAME#ov`` (OV), both carrying both fields; a name with one target keeps its own name. An empty OV
cell or ``[]`` in the MER label files means ``['neutral']``, as MER2025's loaders do; in ``labels.csv``
an empty cell means "no OV target" and ``[]`` means ``['neutral']``.

Links: a video may be a symbolic link to anywhere; one that cannot be opened (a loop, a dangling link)
is a ``bad_link`` Skip. A clip's side files (subtitles, utterance file, audio, face crops) must resolve
inside the raw folder: one that does not, or cannot be opened, is refused unread and the clip becomes a
``bad_side_file`` Skip naming the file.

Accounting: every label-csv row and every video file ends up in a ``RawClip`` or a ``Skip``. In the
dataset layouts a video without a label row is skipped as ``no_label`` (``include_unlabeled=True``
makes it an answer-less clip, for prediction); in ``folder`` it is always a clip.
"""
from __future__ import annotations

import ast
import csv
import dataclasses
import errno
import glob
import os
import re
import unicodedata

from microemo_jax.data import prompt

SOURCES = ('emer_v1', 'emer_v2', 'mer_ov', 'mer2025', 'folder')
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.webm', '.mov')
SUBTITLE_EXTENSIONS = ('.srt', '.vtt')
AUDIO_EXTENSIONS = ('.wav', '.flac', '.mp3', '.m4a', '.ogg')
UTTERANCE_EXTENSIONS = ('.json', '.csv', '.tsv', '.txt')
OV_SUFFIX = '#ov'
MAX_NAME_BYTES = 200
_MAX_OPENSET_CHARS = 10_000


@dataclasses.dataclass
class RawClip:
    name: str
    video: str | None
    subtitle: str = ''
    answer_kind: str | None = None       # 'description' | 'ov' | None (no target: prediction only)
    reason: str | None = None
    openset: list[str] | None = None
    emotion: str | None = None
    subtitle_file: str | None = None     # timed .srt / .vtt
    utterance_file: str | None = None
    audio_file: str | None = None        # dataset-shipped audio (MER2025 audio/NAME.wav)
    faces_npy: str | None = None         # OpenFace crops openface_face/NAME/NAME.npy

    @property
    def question(self) -> str | None:
        return prompt.question_for(self.answer_kind) if self.answer_kind else None

    @property
    def answer(self) -> str | None:
        """The training target text for ``answer_kind``."""
        if self.answer_kind == 'description':
            return self.reason
        if self.answer_kind == 'ov':
            return prompt.ov_answer(self.openset)
        return None


@dataclasses.dataclass
class Skip:
    name: str
    reason: str      # 'code: specifics', e.g. 'video_missing: no NAME.mp4/... under DIR'


# ---------------------------------------------------------------------------------------------- names

def unsafe_name_reason(name: str) -> str | None:
    """Why ``name`` could not be used as a file name inside an output directory (None: it is safe)."""
    if not name:
        return 'empty name'
    if '\x00' in name:
        return 'contains NUL'
    if any(unicodedata.category(c) == 'Cc' for c in name):
        return 'contains control characters'
    if any(unicodedata.category(c) == 'Cs' for c in name):
        return 'contains bytes that are not UTF-8'
    if '/' in name or '\\' in name or (os.sep in name) or (os.altsep and os.altsep in name):
        return 'contains a path separator'
    if name in ('.', '..'):
        return "is '.' or '..'"
    if name.startswith('.'):
        return "starts with '.'"
    if os.path.isabs(name) or re.match(r'^[A-Za-z]:', name):
        return 'is an absolute path or drive'
    if len(name.encode('utf-8', 'surrogatepass')) > MAX_NAME_BYTES:
        return f'is longer than {MAX_NAME_BYTES} bytes'
    return None


def _is_dir(entry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link loop
        return False


def _key(name: str) -> str:
    """Lookup key: NFC, so names from a csv find files that macOS stored decomposed (NFD)."""
    return unicodedata.normalize('NFC', name)


# ---------------------------------------------------------------------------------------------- openset

_LABEL_OK = re.compile(r"^[\w\s\-'’/&]+$")


def _check_label(label: str) -> str:
    label = ' '.join(label.split())
    if not _LABEL_OK.match(label) or '_' in label:
        raise ValueError(f'{label!r} is not an emotion label (letters, digits, spaces, - \' / & only)')
    return label


def parse_openset(text: str) -> list[str]:
    """Parse an OV label cell as data: "['happy', 'excited']", "('a',)" or "happy, sad".

    Literals go through ``ast.literal_eval`` (never ``eval``) and must be a list/tuple of str; every label
    must look like a label (letters, digits, spaces, - ' / &), so code-like strings are rejected. Exact
    duplicates are dropped; an empty set gives ['neutral'] (MER2025's loaders). Raises ValueError.
    """
    s = str(text).strip()
    if len(s) > _MAX_OPENSET_CHARS:
        raise ValueError(f'openset is {len(s)} characters long (limit {_MAX_OPENSET_CHARS})')
    if s[:1] in ('[', '(', '"', "'", '{'):
        try:
            value = ast.literal_eval(s)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
            raise ValueError(f'openset {s[:80]!r} is not a Python list literal ({type(e).__name__})') from None
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f'openset {s[:80]!r} is not a list of strings')
        items = list(value)
    else:
        items = s.split(',')
    labels = []
    for item in items:
        if item.strip():
            label = _check_label(item)
            if label not in labels:
                labels.append(label)
    return labels or ['neutral']


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


class _DirIndex:
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
            self.by_key.setdefault(_key(stem), []).append(path)

    def get(self, name: str) -> list[str]:
        return self.by_key.get(_key(name), [])


class _Finder:
    """Finds each name's video and side files under a raw directory; remembers which videos were used."""

    def __init__(self, raw_dir: str):
        self.raw_dir = raw_dir
        video_dir = os.path.join(raw_dir, 'video')
        self.video_dirs = [d for d in (video_dir, raw_dir) if os.path.isdir(d)]
        self.videos = [_DirIndex(d, VIDEO_EXTENSIONS) for d in self.video_dirs]
        self.subtitles = {d: _DirIndex(d, SUBTITLE_EXTENSIONS, keep_bad=True) for d in self.video_dirs}
        self.utterances = {d: _DirIndex(d, UTTERANCE_EXTENSIONS, suffix='.utt', keep_bad=True) for d in self.video_dirs}
        self.utterance_dir = _DirIndex(os.path.join(raw_dir, 'utterances'), UTTERANCE_EXTENSIONS, keep_bad=True)
        self.audio = _DirIndex(os.path.join(raw_dir, 'audio'), AUDIO_EXTENSIONS, keep_bad=True)
        face_root = os.path.join(raw_dir, 'openface_face')
        self.face_dirs = ({_key(e.name): e.path for e in os.scandir(face_root) if _is_dir(e)}
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
               if _key(stem) == _key(name)]
        for path, (stem, _) in list(self.bad_videos.items()):
            if _key(stem) == _key(name):
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
        face_dir = self.face_dirs.get(_key(name))
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

    def leftovers(self, label_file: str, make_clip, taken: set[str]) -> tuple[list[RawClip], list[Skip]]:
        """Account for every video file no label used: duplicate, unsafe, unlabeled (clip or skip)."""
        clips, skips = [], []
        chosen: dict[str, str] = {}
        for stem, path in self.all_videos():
            chosen.setdefault(_key(stem), self.candidates(stem)[0])
            if path in self.used:
                continue
            first = chosen[_key(stem)]
            why = unsafe_name_reason(stem)
            if why:
                skips.append(Skip(stem, f'unsafe_name: video file {path!r}: name {why}'))
            elif first != path:
                skips.append(Skip(stem, f'duplicate_video: {path} has the same name as {first}, which is used instead'))
            elif make_clip is not None and stem in taken:
                skips.append(Skip(stem, f'duplicate_name: video {path} is named like a clip made from {label_file}'))
            elif make_clip is not None:
                self.used.add(path)
                clips.append(make_clip(stem, path))
            else:
                skips.append(Skip(stem, f'no_label: video {path} has no usable row in {label_file}'))
        return clips, skips


# ---------------------------------------------------------------------------------------------- csv

def _require(raw_dir: str, name: str) -> str:
    path = os.path.join(raw_dir, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: this layout needs {name} in {raw_dir}")
    return path


def _read_csv(path: str, required: tuple[str, ...]):
    """(header, rows as (line, name, {column: cell}), Skips of malformed rows) of a UTF-8 (BOM or not) csv.

    The first required column is the name column.
    """
    base = os.path.basename(path)
    try:
        with open(path, encoding='utf-8-sig', newline='') as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{path} is empty: expected a header with columns {', '.join(required)}")
            header = [h.strip() for h in header]
            missing = [c for c in required if c not in header]
            if missing:
                raise ValueError(f"{path} lacks column(s) {', '.join(missing)} (header: {header}); expected "
                                 f"{', '.join(required)}")
            rows, skips = [], []
            for cells in reader:
                line = reader.line_num
                if not cells or all(not c.strip() for c in cells):
                    continue                       # blank line: no data
                name = cells[header.index(required[0])].strip() if len(cells) > header.index(required[0]) else ''
                if len(cells) != len(header):
                    skips.append(Skip(name or f'{base}:{line}', f'malformed_row: {base} line {line}: {len(cells)} '
                                                                 f'columns, header has {len(header)}'))
                    continue
                if not name:
                    skips.append(Skip(f'{base}:{line}', f'malformed_row: {base} line {line}: empty name'))
                    continue
                rows.append((line, name, dict(zip(header, cells))))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 ({e}): re-save it as UTF-8") from None
    except csv.Error as e:
        raise ValueError(f"{path} is not a readable csv: {e}") from None
    return header, rows, skips


def _subtitles(raw_dir: str, *, required: bool = False) -> tuple[dict[str, str], list[Skip]]:
    """name -> english subtitle from subtitle_chieng.csv (MER2023/2024/2025), if the file is there."""
    path = os.path.join(raw_dir, 'subtitle_chieng.csv')
    if not os.path.isfile(path):
        if required:
            _require(raw_dir, 'subtitle_chieng.csv')
        return {}, []
    _, rows, skips = _read_csv(path, ('name', 'english'))
    for s in skips:
        s.reason += ' (its subtitle is not used)'
    out: dict[str, str] = {}
    for line, name, row in rows:
        if _key(name) in out:
            skips.append(Skip(name, f'duplicate_name: subtitle_chieng.csv line {line} repeats {name!r}; the first '
                                    f'subtitle is used'))
            continue
        out[_key(name)] = row['english'].strip()
    return out, skips


@dataclasses.dataclass
class _Label:
    name: str
    where: str                # 'file line N'
    reason: str | None = None
    openset: list[str] | None = None
    emotion: str | None = None
    subtitle: str | None = None


def _make_clips(label: _Label, video: str, side: dict, subtitle: str) -> list[RawClip]:
    def clip(name, kind):
        return RawClip(name=name, video=video, subtitle=subtitle, answer_kind=kind, reason=label.reason,
                       openset=None if label.openset is None else list(label.openset), emotion=label.emotion, **side)
    clips = []
    if label.reason:
        clips.append(clip(label.name, 'description'))
    if label.openset is not None:
        clips.append(clip(label.name + OV_SUFFIX if label.reason else label.name, 'ov'))
    if not clips:
        clips.append(clip(label.name, None))
    return clips


def _collect(labels: list[_Label], finder: _Finder, subtitles: dict[str, str], skips: list[Skip]) -> list[RawClip]:
    """Labels -> clips, skipping unsafe names and labels whose video is missing."""
    clips, names = [], set()
    for label in labels:
        why = unsafe_name_reason(label.name)
        if why:
            skips.append(Skip(label.name, f'unsafe_name: {label.where}: name {label.name!r} {why}'))
            continue
        video, side = finder.locate(label.name)
        if video is None:
            skips.append(Skip(label.name, f'{finder.missing(label.name)} ({label.where})'))
            continue
        subtitle = label.subtitle if label.subtitle is not None else subtitles.get(_key(label.name), '')
        for clip in _make_clips(label, video, side, subtitle):
            if clip.name in names:     # e.g. a raw name 'x#ov' next to 'x' with both targets
                skips.append(Skip(clip.name, f'duplicate_name: {label.where}: clip name {clip.name!r} already taken'))
                continue
            names.add(clip.name)
            clips.append(clip)
    return clips


def _dedupe(labels: list[_Label], skips: list[Skip]) -> list[_Label]:
    first: dict[str, str] = {}
    out = []
    for label in labels:
        if _key(label.name) in first:
            skips.append(Skip(label.name, f'duplicate_name: {label.where} repeats {label.name!r} from '
                                          f'{first[_key(label.name)]}; the first row is used'))
            continue
        first[_key(label.name)] = label.where
        out.append(label)
    return out


def _text_labels(path: str, columns: tuple[str, ...], target: str, skips: list[Skip], **extra) -> list[_Label]:
    """Rows whose target column is free text (a description); empty target -> skipped."""
    base = os.path.basename(path)
    _, rows, bad = _read_csv(path, columns)
    skips.extend(bad)
    labels = []
    for line, name, row in rows:
        text = row[target].strip()
        if not text:
            skips.append(Skip(name, f'empty_label: {base} line {line}: column {target!r} is empty'))
            continue
        labels.append(_Label(name, f'{base} line {line}', reason=text,
                             **{k: row[col].strip() for k, col in extra.items()}))
    return labels


def _ov_labels(path: str, skips: list[Skip]) -> list[_Label]:
    """Rows of a MER openset file (an empty cell means ['neutral']); unparsable sets -> skipped."""
    base = os.path.basename(path)
    _, rows, bad = _read_csv(path, ('name', 'openset'))
    skips.extend(bad)
    labels = []
    for line, name, row in rows:
        try:
            openset = parse_openset(row['openset'])
        except ValueError as e:
            skips.append(Skip(name, f'malformed_row: {base} line {line}: {e}'))
            continue
        labels.append(_Label(name, f'{base} line {line}', openset=openset))
    return labels


# ---------------------------------------------------------------------------------------------- layouts
# Each returns (labels, subtitles by name, label file names for messages).

def _emer_v1(raw_dir, skips):
    path = _require(raw_dir, 'gt-eng.csv')
    labels = _text_labels(path, ('names', 'emotions', 'subtitles', 'reasons'), 'reasons', skips,
                          emotion='emotions', subtitle='subtitles')
    for label in labels:
        label.emotion = label.emotion or None
    return _dedupe(labels, skips), {}, 'gt-eng.csv'


def _emer_v2(raw_dir, skips):
    path = _require(raw_dir, 'final-EMER-reason.csv')
    subtitles, bad = _subtitles(raw_dir)
    skips.extend(bad)
    return _dedupe(_text_labels(path, ('name', 'english'), 'english', skips), skips), subtitles, \
        'final-EMER-reason.csv'


def _mer_ov(raw_dir, skips):
    path = _require(raw_dir, 'check-openset.csv')
    subtitles, bad = _subtitles(raw_dir)
    skips.extend(bad)
    return _dedupe(_ov_labels(path, skips), skips), subtitles, 'check-openset.csv'


def _mer2025(raw_dir, skips):
    track2 = sorted(glob.glob(os.path.join(glob.escape(raw_dir), 'track2_train_*.csv')))
    track3 = sorted(glob.glob(os.path.join(glob.escape(raw_dir), 'track3_train_*.csv')))
    if not track2 and not track3:
        raise FileNotFoundError(f"no track2_train_*.csv (name, openset) or track3_train_*.csv (name, reason) in "
                                f"{raw_dir}: the mer2025 layout needs at least one, plus subtitle_chieng.csv")
    subtitles, bad = _subtitles(raw_dir, required=True)
    skips.extend(bad)
    ov = _dedupe([x for p in track2 for x in _ov_labels(p, skips)], skips)
    text = _dedupe([x for p in track3 for x in _text_labels(p, ('name', 'reason'), 'reason', skips)], skips)
    merged: dict[str, _Label] = {}
    for label in text + ov:     # one label per name with both targets (-> NAME and NAME#ov clips)
        have = merged.setdefault(_key(label.name), _Label(label.name, label.where))
        have.reason = have.reason or label.reason
        have.openset = have.openset if have.openset is not None else label.openset
        if label.where not in have.where:
            have.where += f' + {label.where}'
    return list(merged.values()), subtitles, ', '.join(os.path.basename(p) for p in track2 + track3)


def _folder(raw_dir, skips):
    path = os.path.join(raw_dir, 'labels.csv')
    labels: list[_Label] = []
    if os.path.isfile(path):
        header, rows, bad = _read_csv(path, ('name',))
        skips.extend(bad)
        if not set(header) & {'openset', 'reason'}:
            raise ValueError(f"{path} has neither an 'openset' nor a 'reason' column (header: {header}); expected "
                             f"name, openset, reason")
        for line, name, row in rows:
            where = f'labels.csv line {line}'
            try:
                cell = row.get('openset', '').strip()
                openset = parse_openset(cell) if cell else None     # empty cell: no OV target here
            except ValueError as e:
                skips.append(Skip(name, f'malformed_row: {where}: {e}'))
                continue
            labels.append(_Label(name, where, reason=row.get('reason', '').strip() or None, openset=openset))
    return _dedupe(labels, skips), {}, 'labels.csv'


SIDE_FILES = (('subtitle_file', 'subtitle'), ('utterance_file', 'utterance file'), ('audio_file', 'audio file'),
              ('faces_npy', 'face crops'))


def side_file_problem(clip: RawClip, raw_dir: str) -> str | None:
    """Why one of the clip's side files may not be read (a loop, a dangling link, a link out of ``raw_dir``)."""
    for attr, what in SIDE_FILES:
        path = getattr(clip, attr)
        if path is not None:
            why = outside_problem(path, raw_dir)
            if why:
                return f'{what} {path} {why}'
    return None


def _refuse_bad_side_files(clips: list[RawClip], raw_dir: str, skips: list[Skip]) -> list[RawClip]:
    kept = []
    for clip in clips:
        why = side_file_problem(clip, raw_dir)
        if why:
            skips.append(Skip(clip.name, f'bad_side_file: {why}'))
        else:
            kept.append(clip)
    return kept


_LAYOUTS = dict(emer_v1=_emer_v1, emer_v2=_emer_v2, mer_ov=_mer_ov, mer2025=_mer2025, folder=_folder)


def read_source(kind: str, raw_dir: str, *, include_unlabeled: bool = False) -> tuple[list[RawClip], list[Skip]]:
    """All clips of a raw layout, and a Skip (with a specific reason) for every row or video not used.

    ``include_unlabeled``: in the dataset layouts, videos without a label row become answer-less clips
    (for prediction) instead of ``no_label`` skips; ``folder`` always keeps them.
    """
    if kind not in _LAYOUTS:
        raise ValueError(f"unknown source {kind!r}; expected one of {', '.join(SOURCES)}")
    if not os.path.isdir(raw_dir):
        raise FileNotFoundError(f"raw directory {raw_dir!r} does not exist")
    skips: list[Skip] = []
    labels, subtitles, label_files = _LAYOUTS[kind](raw_dir, skips)
    finder = _Finder(raw_dir)
    clips = _collect(labels, finder, subtitles, skips)

    def unlabeled(stem, path):
        return RawClip(name=stem, video=path, subtitle=subtitles.get(_key(stem), ''), **finder.side_files(stem, path))
    more, leftover = finder.leftovers(label_files, unlabeled if include_unlabeled or kind == 'folder' else None,
                                      {c.name for c in clips})
    skips += leftover + finder.bad_links()
    clips += more
    clips = _refuse_bad_side_files(clips, raw_dir, skips)
    if kind == 'folder':
        clips.sort(key=lambda c: c.name)
    return clips, skips


# ---------------------------------------------------------------------------------------------- splits
SPLIT_NAMES = ('train', 'validation', 'test')


def read_split_file(path: str) -> dict[str, tuple[str, str]]:
    """An official split, ``name,split`` rows (split one of train/validation/test) -> {NFC video name: (split,
    'FILE line N')}. A name may be a video or one of its targets (``NAME#ov`` counts for ``NAME``). Raises
    ValueError naming the file and line for an unknown split, a malformed row, or one video given two splits."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--split-file {path} does not exist")
    base = os.path.basename(path)
    _, rows, bad = _read_csv(path, ('name', 'split'))
    if bad:
        raise ValueError(f"--split-file {path}: {bad[0].reason.split(': ', 1)[-1]}")
    out: dict[str, tuple[str, str]] = {}
    for line, name, row in rows:
        split = row['split'].strip().lower()
        if split not in SPLIT_NAMES:
            raise ValueError(f"--split-file {path} line {line}: split {row['split']!r} for {name!r} is not one of "
                             f"{', '.join(SPLIT_NAMES)}")
        video = _key(name.split('#', 1)[0])
        where = f'{base} line {line}'
        if video in out and out[video][0] != split:
            raise ValueError(f"--split-file {path}: {name!r} is {split} on line {line} but {out[video][0]} on "
                             f"{out[video][1]} (a video's records must share one split)")
        out.setdefault(video, (split, where))
    return out


def video_key(name: str) -> str:
    """The lookup key of the video a clip name belongs to (its name before '#', NFC)."""
    return _key(name.split('#', 1)[0])
