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
makes it an answer-less clip, for prediction); in ``folder`` it is always a clip. A video whose label row
was refused (malformed, an empty label) is skipped as ``no_label`` in every layout, beside its row's own
Skip: it never trains as a clip without an answer.

This module holds the layouts; ``raw_files.py`` finds the files and ``raw_labels.py`` reads the label files.
"""
from __future__ import annotations

import dataclasses
import glob
import os

from microemo_jax.data import prompt
from microemo_jax.data.raw.files import Finder, Skip, name_key, outside_problem, unsafe_name_reason
from microemo_jax.data.raw.labels import (
    Label,
    dedupe,
    ov_labels,
    parse_openset,
    read_csv,
    read_subtitles,
    rejected_rows,
    require,
    text_labels,
)

SOURCES = ('emer_v1', 'emer_v2', 'mer_ov', 'mer2025', 'folder')
OV_SUFFIX = '#ov'


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
    ask: str | None = None               # the question's text when a layout fixes it (MER-UniBench's one question)
    split: str | None = None             # the dataset's official split ('test' for the benchmark sources)
    segment: tuple[float, float] | None = None   # (start, end) seconds of ``video`` that are the clip (IEMOCAP)
    crop: str | None = None              # 'left' | 'right': keep that half of the frame (IEMOCAP's two actors)

    @property
    def question(self) -> str | None:
        if self.ask:
            return self.ask
        return prompt.question_for(self.answer_kind) if self.answer_kind else None

    @property
    def answer(self) -> str | None:
        """The training target text for ``answer_kind``."""
        if self.answer_kind == 'description':
            return self.reason
        if self.answer_kind == 'ov':
            return prompt.ov_answer(self.openset)
        return None


def _make_clips(label: Label, video: str, side: dict, subtitle: str) -> list[RawClip]:
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


def _collect(labels: list[Label], finder: Finder, subtitles: dict[str, str], skips: list[Skip]) -> list[RawClip]:
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
        subtitle = label.subtitle if label.subtitle is not None else subtitles.get(name_key(label.name), '')
        for clip in _make_clips(label, video, side, subtitle):
            if clip.name in names:     # e.g. a raw name 'x#ov' next to 'x' with both targets
                skips.append(Skip(clip.name, f'duplicate_name: {label.where}: clip name {clip.name!r} already taken'))
                continue
            names.add(clip.name)
            clips.append(clip)
    return clips


# ---------------------------------------------------------------------------------------------- layouts
# Each returns (labels, subtitles by name, label file names for messages).

def _emer_v1(raw_dir, skips):
    path = require(raw_dir, 'gt-eng.csv')
    labels = text_labels(path, ('names', 'emotions', 'subtitles', 'reasons'), 'reasons', skips,
                          emotion='emotions', subtitle='subtitles')
    for label in labels:
        label.emotion = label.emotion or None
    return dedupe(labels, skips), {}, 'gt-eng.csv'


def _emer_v2(raw_dir, skips):
    path = require(raw_dir, 'final-EMER-reason.csv')
    subtitles, bad = read_subtitles(raw_dir)
    skips.extend(bad)
    return dedupe(text_labels(path, ('name', 'english'), 'english', skips), skips), subtitles, \
        'final-EMER-reason.csv'


def _mer_ov(raw_dir, skips):
    path = require(raw_dir, 'check-openset.csv')
    subtitles, bad = read_subtitles(raw_dir)
    skips.extend(bad)
    return dedupe(ov_labels(path, skips), skips), subtitles, 'check-openset.csv'


def _mer2025(raw_dir, skips):
    track2 = sorted(glob.glob(os.path.join(glob.escape(raw_dir), 'track2_train_*.csv')))
    track3 = sorted(glob.glob(os.path.join(glob.escape(raw_dir), 'track3_train_*.csv')))
    if not track2 and not track3:
        raise FileNotFoundError(f"no track2_train_*.csv (name, openset) or track3_train_*.csv (name, reason) in "
                                f"{raw_dir}: the mer2025 layout needs at least one, plus subtitle_chieng.csv")
    subtitles, bad = read_subtitles(raw_dir, required=True)
    skips.extend(bad)
    ov = dedupe([x for p in track2 for x in ov_labels(p, skips)], skips)
    text = dedupe([x for p in track3 for x in text_labels(p, ('name', 'reason'), 'reason', skips)], skips)
    merged: dict[str, Label] = {}
    for label in text + ov:     # one label per name with both targets (-> NAME and NAME#ov clips)
        have = merged.setdefault(name_key(label.name), Label(label.name, label.where))
        have.reason = have.reason or label.reason
        have.openset = have.openset if have.openset is not None else label.openset
        if label.where not in have.where:
            have.where += f' + {label.where}'
    return list(merged.values()), subtitles, ', '.join(os.path.basename(p) for p in track2 + track3)


def _folder(raw_dir, skips):
    path = os.path.join(raw_dir, 'labels.csv')
    labels: list[Label] = []
    if os.path.isfile(path):
        header, rows, bad = read_csv(path, ('name',))
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
            labels.append(Label(name, where, reason=row.get('reason', '').strip() or None, openset=openset))
    return dedupe(labels, skips), {}, 'labels.csv'


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
    # a video whose only label row was refused is skipped (its row's Skip says why), never kept as a clip without
    # an answer as if it had no row
    rejected = rejected_rows(skips) - {name_key(label.name) for label in labels}
    finder = Finder(raw_dir)
    clips = _collect(labels, finder, subtitles, skips)

    def unlabeled(stem, path):
        return RawClip(name=stem, video=path, subtitle=subtitles.get(name_key(stem), ''),
                       **finder.side_files(stem, path))
    more, leftover = finder.leftovers(label_files, unlabeled if include_unlabeled or kind == 'folder' else None,
                                      {c.name for c in clips}, rejected=rejected)
    skips += leftover + finder.bad_links()
    clips += more
    clips = _refuse_bad_side_files(clips, raw_dir, skips)
    if kind == 'folder':
        clips.sort(key=lambda c: c.name)
    return clips, skips
