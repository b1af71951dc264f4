"""Reading the benchmark datasets' own label files as they are published, and finding their clips.

The nine MER-UniBench datasets come from different groups, each with its own habits: MELD's csv files hold
Windows-1252 punctuation stored as C1 control characters (U+0092 for a right quote), some files start with
a byte-order mark, end lines with CRLF, quote their fields, carry extra columns, or (re-saved by a
spreadsheet) are not UTF-8 at all. ``read_table`` reads all of these as data and says what it had to do
(``notes``); a row it cannot read becomes a ``Skip`` naming the file and line, never a silent loss.

``BenchRow`` is one labelled clip of a benchmark dataset as a family module (``meld``, ``iemocap``,
``mmsa``, ``mer``, ``processed``) reads it; ``data/raw/bench.py`` turns rows into clips and gold.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os

from microemo_jax.data.raw.files import VIDEO_EXTENSIONS, DirIndex, Skip

SUBTITLE_FILES = ('subtitle_chieng.csv', 'subtitle_eng.csv', 'transcription-engchi-polish.csv', 'transcription.csv',
                  'transcription_merge.csv')
VALIDATION_NAMES = {'valid': 'validation', 'validation': 'validation', 'val': 'validation', 'dev': 'validation',
                    'train': 'train', 'test': 'test'}


@dataclasses.dataclass
class BenchRow:
    """One labelled clip: its benchmark name, gold value, official split and where its files are."""
    name: str                        # the benchmark's name (AffectGPT's processed name, e.g. test_dia3_utt1)
    gold: str | float                # emotion word, valence, or the OV label cell as written
    split: str                       # 'train' | 'validation' | 'test'
    where: str                       # 'FILE line N' for messages
    subtitle: str = ''
    video: str | None = None         # None: not found (``missing`` says where it was looked for)
    missing: str = ''
    audio_file: str | None = None
    faces_npy: str | None = None
    segment: tuple[float, float] | None = None   # (start, end) seconds inside ``video`` (IEMOCAP dialogs)
    crop: str | None = None          # 'left' | 'right': the half of the frame the speaker sits in


def fix_c1(text: str) -> str:
    """Windows-1252 punctuation stored as C1 control characters (MELD: U+0092 for ’) -> the characters meant;
    a no-break space -> a space. Other text is unchanged."""
    if not any('\x80' <= c <= '\x9f' or c == '\xa0' for c in text):
        return text
    out = []
    for c in text:
        if '\x80' <= c <= '\x9f':
            try:
                c = c.encode('latin-1').decode('cp1252')
            except UnicodeDecodeError:       # 0x81, 0x8d, 0x8f, 0x90, 0x9d: unassigned in cp1252
                c = ''
        elif c == '\xa0':
            c = ' '
        out.append(c)
    return ''.join(out)


def read_text(path: str) -> tuple[str, list[str]]:
    """A label file's text (UTF-8 with or without a BOM, UTF-16 with a BOM, else Windows-1252), and notes on
    what was not UTF-8."""
    with open(path, 'rb') as f:
        data = f.read()
    notes = []
    for bom, codec in ((b'\xff\xfe', 'utf-16'), (b'\xfe\xff', 'utf-16')):
        if data.startswith(bom):
            notes.append(f'{os.path.basename(path)}: UTF-16 text')
            return data.decode(codec), notes
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        text = data.decode('cp1252', errors='replace')
        notes.append(f'{os.path.basename(path)}: not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); read as '
                     f'Windows-1252')
    return text, notes


def read_table(path: str, required: tuple[str, ...], *, aliases: dict[str, tuple[str, ...]] | None = None):
    """(rows, skips, notes) of a published label csv.

    ``rows`` are (line, {column: cell}) with the header's names lower-cased and stripped, so ``Emotion`` and
    `` emotion`` both read as ``emotion``; ``aliases`` maps a wanted column to other spellings (the first
    present wins). Extra columns are kept; a row with more cells than the header keeps them if the extra
    cells are empty (a trailing comma), else it is a ``malformed_row`` skip, as is a row with fewer cells.
    Raises ValueError naming the file when it is empty or lacks a required column.
    """
    base = os.path.basename(path)
    text, notes = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=''))
    try:
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path} is empty: expected a header with columns {', '.join(required)}")
        fields = [h.strip().lower() for h in header]
        for wanted, others in (aliases or {}).items():
            if wanted not in fields:
                for other in others:
                    if other in fields:
                        fields[fields.index(other)] = wanted
                        break
        missing = [c for c in required if c not in fields]
        if missing:
            raise ValueError(f"{path} lacks column(s) {', '.join(missing)} (header: {header}); expected "
                             f"{', '.join(required)}")
        rows, skips = [], []
        for cells in reader:
            line = reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) > len(fields) and not any(c.strip() for c in cells[len(fields):]):
                cells = cells[:len(fields)]
            if len(cells) != len(fields):
                skips.append(Skip(f'{base}:{line}', f'malformed_row: {base} line {line}: {len(cells)} cells, the '
                                                    f'header has {len(fields)}'))
                continue
            rows.append((line, {f: fix_c1(c) for f, c in zip(fields, cells) if f}))
    except csv.Error as e:
        raise ValueError(f"{path} is not a readable csv (line {reader.line_num}: {e})") from None
    return rows, skips, notes


def find_file(root: str, names: tuple[str, ...], subdirs: tuple[str, ...] = ('',)) -> str | None:
    """The first of ``root/subdir/name`` that is a file (case-sensitive names, in the order given)."""
    for sub in subdirs:
        for name in names:
            path = os.path.join(root, sub, name)
            if os.path.isfile(path):
                return path
    return None


class VideoDirs:
    """Clip videos by name in a list of folders (first folder first); each folder is listed once."""

    def __init__(self, root: str, subdirs: tuple[str, ...], extensions: tuple[str, ...] = VIDEO_EXTENSIONS):
        self.dirs = [os.path.join(root, s) if s else root for s in subdirs]
        self.dirs = [d for d in self.dirs if os.path.isdir(d)]
        self.indexes = [DirIndex(d, extensions) for d in self.dirs]

    def find(self, *names: str) -> str | None:
        for index in self.indexes:
            for name in names:
                found = index.get(name)
                if found:
                    return found[0]
        return None

    def where(self, name: str) -> str:
        places = ', '.join(self.dirs) if self.dirs else 'no video folder'
        return f"no {name}.{{{','.join(e[1:] for e in VIDEO_EXTENSIONS)}}} in {places}"


def split_name(value: str, where: str) -> str:
    """An official split column's value -> train / validation / test; ValueError for anything else."""
    split = VALIDATION_NAMES.get(str(value).strip().lower())
    if split is None:
        raise ValueError(f"{where}: split {value!r} is not one of train, valid, test")
    return split


def openface_npy(root: str, name: str) -> str | None:
    """OpenFace crops of a clip: ``openface_face/NAME/NAME.npy`` (MER) or ``openface_face/NAME.npy`` (AffectGPT's
    processed folders)."""
    for path in (os.path.join(root, 'openface_face', name, name + '.npy'),
                 os.path.join(root, 'openface_face', name + '.npy')):
        if os.path.isfile(path):
            return path
    return None


def audio_wav(root: str, name: str, subdirs: tuple[str, ...] = ('audio', 'subaudio')) -> str | None:
    return find_file(root, (name + '.wav',), subdirs)


def subtitles(root: str, notes: list[str]) -> dict[str, str]:
    """name -> subtitle from the first subtitle table in ``root`` (``SUBTITLE_FILES``: MER's and AffectGPT's),
    its ``english`` column, else ``sentence``, else ``chinese``; empty without one."""
    path = find_file(root, SUBTITLE_FILES)
    if path is None:
        return {}
    rows, bad, more = read_table(path, ('name',))
    notes.extend(more)
    if bad:
        notes.append(f'{os.path.basename(path)}: {len(bad)} unreadable rows (their subtitles are not used)')
    out = {}
    for _, cells in rows:
        text = next((cells[c] for c in ('english', 'sentence', 'chinese') if cells.get(c, '').strip()), '')
        out.setdefault(cells['name'].strip(), ' '.join(text.split()))
    return out
