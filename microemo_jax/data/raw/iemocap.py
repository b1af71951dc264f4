"""IEMOCAP (4-class) as MER-UniBench reads it: the session folders of ``IEMOCAP_full_release``.

Facts (the IEMOCAP release; AffectGPT fffca79 ``toolkit/preprocess/iemocap.py`` and
``my_affectgpt/datasets/datasets/iemocap.py``):

* labels: ``Session{1..5}/dialog/EmoEvaluation/{dialog}.txt``, one line per utterance,
  ``[START - END]<TAB>UTTERANCE<TAB>EMOTION<TAB>[V, A, D]`` (times in seconds inside the dialog);
* 4 classes, as the benchmark's ``label_4way``: hap and exc -> happy, sad, neu -> neutral, ang -> anger;
  every other code (fru, sur, fea, dis, oth, xxx) is not in the set. Session 5 is the test set (1241
  utterances), sessions 1-4 train;
* speech: ``Session*/dialog/transcriptions/{dialog}.txt`` lines ``UTTERANCE [START-END]: text``;
* audio: ``Session*/sentences/wav/{dialog}/{UTTERANCE}.wav``;
* video: there are no utterance videos in the release; ``Session*/dialog/avi/DivX/{dialog}.avi`` holds the
  dialog, both actors side by side. The benchmark cuts [START, END] out of it and keeps the speaker's half:
  the left half when the dialog's 6th character (the left actor's gender, ``Ses01F...``) equals the
  utterance's 4th-from-last (its speaker's gender, ``..._F000``), else the right half. We do the same at
  prepare time (``RawClip.segment``/``crop``). An utterance video already cut (AffectGPT's processed
  ``subvideo-tgt/NAME.avi``, or ``subvideo/``, ``video/`` or the folder itself) is used as it is.
"""
from __future__ import annotations

import glob
import os
import re

from microemo_jax.data.raw.bench_files import BenchRow, VideoDirs, find_file, read_text
from microemo_jax.data.raw.files import Skip, unsafe_name_reason

FOUR_CLASS = {'hap': 'happy', 'exc': 'happy', 'sad': 'sad', 'neu': 'neutral', 'ang': 'anger'}
TEST_SESSION = 5
_LABEL_LINE = re.compile(r'^\[\s*([0-9.]+)\s*-\s*([0-9.]+)\s*\]\s+(\S+)\s+(\S+)')
_SPEECH_LINE = re.compile(r'^(\S+)\s*\[[^\]]*\]\s*:\s*(.*)$')


def _sessions(root: str) -> list[tuple[int, str]]:
    out = []
    for sub in ('', 'IEMOCAP_full_release'):
        for path in sorted(glob.glob(os.path.join(glob.escape(os.path.join(root, sub)), 'Session[0-9]'))):
            if os.path.isdir(os.path.join(path, 'dialog', 'EmoEvaluation')):
                out.append((int(os.path.basename(path)[-1]), path))
        if out:
            break
    return out


def present(root: str) -> bool:
    return bool(_sessions(root))


def speaker_half(name: str) -> str:
    """'left' or 'right': where the utterance's speaker sits in the dialog video (the benchmark's rule)."""
    if len(name) < 6 or name[5] not in 'MF' or name[-4] not in 'MF':
        raise ValueError(f"{name!r} is not an IEMOCAP utterance name (SesNNG_..._GNNN)")
    return 'left' if name[5] == name[-4] else 'right'


def _speech(session: str, dialog: str) -> dict[str, str]:
    path = os.path.join(session, 'dialog', 'transcriptions', dialog + '.txt')
    if not os.path.isfile(path):
        return {}
    text, _ = read_text(path)
    out = {}
    for line in text.splitlines():
        m = _SPEECH_LINE.match(line.strip())
        if m:
            out[m.group(1)] = ' '.join(m.group(2).split())
    return out


def read(root: str, skips: list[Skip], notes: list[str], splits=('test',)) -> list[BenchRow]:
    sessions = _sessions(root)
    if not sessions:
        raise FileNotFoundError(f"{root}: no Session1..5/dialog/EmoEvaluation/ folders; the iemocap layout is the "
                                f"IEMOCAP_full_release folder (or AffectGPT's processed folder with label_4way.npz)")
    base = os.path.dirname(sessions[0][1])          # the folder or its IEMOCAP_full_release/
    names = ('subvideo-tgt', 'subvideo', 'video', '')
    cut = VideoDirs(root, names if base == root else
                    tuple(os.path.join(os.path.relpath(base, root), d) for d in names) + names[:-1])
    rows, other = [], 0
    for number, session in sessions:
        split = 'test' if number == TEST_SESSION else 'train'
        if split not in splits:
            continue
        for path in sorted(glob.glob(os.path.join(glob.escape(session), 'dialog', 'EmoEvaluation', '*.txt'))):
            dialog = os.path.splitext(os.path.basename(path))[0]
            text, more = read_text(path)
            notes.extend(more)
            speech = _speech(session, dialog)
            avi = find_file(session, (dialog + '.avi',), ('dialog/avi/DivX', 'dialog/avi'))
            for line_no, line in enumerate(text.splitlines(), 1):
                m = _LABEL_LINE.match(line.strip())
                if not m:
                    continue
                start, end, name, code = float(m.group(1)), float(m.group(2)), m.group(3), m.group(4).lower()
                where = f'{os.path.basename(session)}/dialog/EmoEvaluation/{dialog}.txt line {line_no}'
                if code not in FOUR_CLASS:
                    other += 1
                    continue
                if unsafe_name_reason(name):
                    rows.append(BenchRow(name=name, gold=FOUR_CLASS[code], split=split, where=where))
                    continue                                        # bench.py skips it, unread
                row = BenchRow(name=name, gold=FOUR_CLASS[code], split=split, where=where,
                               subtitle=speech.get(name, ''),
                               audio_file=find_file(session, (name + '.wav',), (f'sentences/wav/{dialog}',))
                               or find_file(root, (name + '.wav',), ('subaudio', 'audio')))
                row.video = cut.find(name)
                if row.video is None and avi is not None:
                    if not end > start:
                        skips.append(Skip(name, f'malformed_row: {where}: the span [{start} - {end}] is empty'))
                        continue
                    try:
                        row.crop = speaker_half(name)
                    except ValueError as e:
                        skips.append(Skip(name, f'malformed_row: {where}: {e}'))
                        continue
                    row.video, row.segment = avi, (start, end)
                if row.video is None:
                    row.missing = (f"no cut video {name}.avi/.mp4 (subvideo-tgt/, subvideo/, video/) and no dialog "
                                   f"video {os.path.basename(session)}/dialog/avi/DivX/{dialog}.avi")
                rows.append(row)
    if other:
        notes.append(f'IEMOCAP: {other} utterances of the wanted sessions have a label outside the 4 classes '
                     f'(fru, sur, fea, dis, oth, xxx) and are not part of the benchmark')
    return rows
