"""Work shards and the prepared dataset as a TFDS ArrayRecord dataset (raw Tensor/Text features).

``prepare`` first turns clips into records and stores them shard by shard under ``OUT/work/`` (so an
interrupted or changed run redoes only what is missing or stale); this builder then copies those records
into TFDS's ArrayRecord files. Readers use ``CheckedBuilder(dataset_dir(OUT)).as_data_source(split)`` (random
access, numpy dicts, what Grain wants): ``tfds.builder_from_directory`` with the feature spec built from our code,
the folder's checked against it and never imported from (``dataset_spec.py`` says why).

Work shards (``shard-NNNNN.npz`` + ``shard-NNNNN.json``) hold data only: the arrays of every record in an
``.npz`` read with ``allow_pickle=False`` (no object arrays, so loading one never runs code), and a JSON
sidecar with the text fields, the skips, the shard's key (what produced it: settings and each input's
identity) and per-record facts (size, which prompt parts were cut). The JSON is written last and names
the key that the ``.npz`` also carries, so a shard counts only when both are complete and agree.

Which split each record goes to (by video) is ``data/raw/splits.py``'s.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.read_only_builder import ReadOnlyBuilder

from microemo_jax.data.raw.splits import SPLITS, check_by_video, split_of
from microemo_jax.data.records.dataset_spec import NAME, VERSION, features, info_proto
from microemo_jax.data.records.record import FIELDS, TEXT_FIELDS
from microemo_jax.safe_paths import inside, remove_inside

SHARD_FORMAT = 6   # 3: face_landmarks / face_landmark_mask; 4: tokenizer (identity of the LLM tokenizer); 5: face_times;
                   # 6: words_span
_KEY_ARRAY = '__key__'


# ------------------------------------------------------------------------------------------------ shards
@dataclasses.dataclass
class Shard:
    """A finished work shard as its JSON sidecar describes it (no array is read to make one)."""
    npz: str                  # path of the .npz
    meta: dict                # the JSON sidecar

    @property
    def key(self) -> str:
        return self.meta['key']

    @property
    def records(self) -> list[dict]:
        """Per record: name, the text fields, nbytes, prompt_shortened."""
        return self.meta['records']

    @property
    def skips(self) -> list[dict]:
        return self.meta['skips']


def shard_paths(work_dir: str, index: int) -> tuple[str, str]:
    base = os.path.join(work_dir, f'shard-{index:05d}')
    return base + '.npz', base + '.json'


def _nbytes(rec: dict) -> int:
    return int(sum(np.asarray(rec[k]).nbytes for k in FIELDS) + sum(len(rec[k].encode()) for k in TEXT_FIELDS))


def write_shard(work_dir: str, index: int, *, key: str, records: list[dict], skips: list[dict],
                clips: list[dict] | None = None, extra: dict | None = None) -> Shard:
    """Store one shard (atomically: the JSON, written last, makes it count). ``skips``: ``{name, reason}`` dicts;
    ``clips``: what the shard was made from (name and identity of each clip), kept to explain a later redo."""
    npz_path, json_path = shard_paths(work_dir, index)
    arrays = {_KEY_ARRAY: np.frombuffer(key.encode('ascii'), np.uint8)}
    metas = []
    for i, rec in enumerate(records):
        for k in FIELDS:
            arrays[f'{i}/{k}'] = np.asarray(rec[k])
        metas.append({**{k: rec[k] for k in TEXT_FIELDS}, 'nbytes': _nbytes(rec),
                      'prompt_shortened': list(rec.get('prompt_shortened', ()))})
    for path in (json_path, npz_path):  # an old JSON must not vouch for the new arrays while they are written
        remove_inside(work_dir, os.path.basename(path))
    tmp = inside(work_dir, os.path.basename(npz_path) + '.tmp.npz')
    np.savez(tmp, **arrays)
    os.replace(tmp, npz_path)
    meta = {'format': SHARD_FORMAT, 'key': key, 'npz_bytes': os.path.getsize(npz_path), 'records': metas,
            'skips': [{'name': s['name'], 'reason': s['reason']} for s in skips], 'clips': clips or [],
            **(extra or {})}
    tmp = inside(work_dir, os.path.basename(json_path) + '.tmp')
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(meta, f, ensure_ascii=False)
    os.replace(tmp, json_path)
    return Shard(npz_path, meta)


def read_shard_meta(work_dir: str, index: int) -> Shard | None:
    """The shard's sidecar if the shard is complete (JSON parses, its .npz has the recorded size); else None."""
    npz_path, json_path = shard_paths(work_dir, index)
    try:
        with open(json_path, encoding='utf-8') as f:
            meta = json.load(f)
        if not isinstance(meta, dict) or meta.get('format') != SHARD_FORMAT or not isinstance(meta.get('key'), str):
            return None
        if os.path.getsize(npz_path) != meta.get('npz_bytes'):
            return None
        if not all(isinstance(meta.get(k), list) for k in ('records', 'skips', 'clips')):
            return None
    except (OSError, ValueError):
        return None
    return Shard(npz_path, meta)


def read_index(work_dir: str) -> list[Shard]:
    """Every complete shard under ``work_dir``, in shard order (reads only the JSON sidecars)."""
    out = []
    for path in sorted(glob.glob(os.path.join(glob.escape(work_dir), 'shard-*.json'))):
        stem = os.path.basename(path)[len('shard-'):-len('.json')]
        if stem.isdigit():
            shard = read_shard_meta(work_dir, int(stem))
            if shard is not None:
                out.append(shard)
    return out


def load_records(shard: Shard, names: set[str] | None = None):
    """The records of ``shard`` (only those in ``names`` when given), arrays read from its .npz without pickle."""
    try:
        with np.load(shard.npz, allow_pickle=False) as z:
            got = bytes(z[_KEY_ARRAY]).decode('ascii', 'replace') if _KEY_ARRAY in z.files else None
            if got != shard.key:
                raise ValueError(f"work shard {shard.npz} does not match its sidecar (another run wrote it?); "
                                 f"re-run prepare")
            for i, meta in enumerate(shard.records):
                if names is not None and meta['name'] not in names:
                    continue
                rec = {k: z[f'{i}/{k}'] for k in FIELDS}
                rec.update({k: meta[k] for k in TEXT_FIELDS})
                yield rec
    except (OSError, KeyError) as e:
        raise ValueError(f"work shard {shard.npz} is damaged ({type(e).__name__}: {e}); re-run prepare") from None
    except ValueError as e:
        if 'allow_pickle' in str(e):
            raise ValueError(f"work shard {shard.npz} holds pickled objects: refused (it was not written by "
                             f"prepare); delete it and re-run prepare") from None
        raise


# ------------------------------------------------------------------------------------------------ builder
class MicroEmoClips(tfds.core.GeneratorBasedBuilder):
    """Prepared MicroEmo clips, copied from the work shards of ``index`` into the splits of ``assignment``."""

    VERSION = tfds.core.Version(VERSION)

    def __init__(self, *, index: list[Shard], assignment: dict[str, str], num_crops: int, timestamp_tokens: int,
                 num_mel_bins: int, description: str = '', **kwargs):
        self._index = index
        self._assignment = assignment
        self._dims = (num_crops, timestamp_tokens, num_mel_bins)
        self._description = description
        super().__init__(**kwargs)

    @property
    def name(self) -> str:  # TFDS derives names from the class; keep a stable snake_case name
        return NAME

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, description=self._description, features=features(*self._dims))

    def _split_generators(self, dl_manager):
        # TFDS cannot write an empty split: a tiny corpus may have no validation or test clip.
        present = set(self._assignment.values())
        return {split: self._generate_examples(split) for split in SPLITS if split in present}

    def _generate_examples(self, split):
        # Each record is read once in all: by the generator of its own split (an .npz reads arrays lazily).
        for shard in self._index:
            names = {r['name'] for r in shard.records if self._assignment.get(r['name']) == split}
            if names:
                for rec in load_records(shard, names):
                    yield rec['name'], {k: rec[k] for k in list(FIELDS) + list(TEXT_FIELDS)}


def dataset_dir(out: str) -> str:
    """Folder holding dataset_info.json of the prepared dataset under ``out``."""
    return os.path.join(out, 'tfds', NAME, VERSION)


def build(out: str, *, num_crops: int, timestamp_tokens: int, num_mel_bins: int, validation_fraction: float = 0.1,
          assignment: dict[str, str] | None = None, index: list[Shard] | None = None, description: str = '') -> str:
    """(Re)build the TFDS dataset from the work shards (``index``, default: those in ``out/work``); returns
    ``dataset_dir(out)``. ``assignment`` maps record name -> split (default: ``split_of`` by video)."""
    index = read_index(os.path.join(out, 'work')) if index is None else index
    names = [r['name'] for shard in index for r in shard.records]
    if not names:
        raise ValueError(f"no clip could be prepared into {out}: every input was skipped (see skipped.jsonl)")
    if assignment is None:
        assignment = {n: split_of(n, validation_fraction) for n in names}
    bad = sorted({s for s in assignment.values() if s not in SPLITS})
    if bad:
        raise ValueError(f"unknown split(s) {bad}; expected {', '.join(SPLITS)}")
    missing = [n for n in names if n not in assignment]
    if missing:
        raise ValueError(f"{len(missing)} record(s) have no split, e.g. {missing[:3]}")
    check_by_video(assignment)
    target = dataset_dir(out)
    shutil.rmtree(inside(out, 'tfds'), ignore_errors=True)   # a link there is refused, not followed
    builder = MicroEmoClips(index=index, assignment={n: assignment[n] for n in names}, num_crops=num_crops,
                            timestamp_tokens=timestamp_tokens, num_mel_bins=num_mel_bins, description=description,
                            data_dir=os.path.join(out, 'tfds'), file_format='array_record')
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(verify_ssl=False))
    if not os.path.isfile(os.path.join(target, 'dataset_info.json')):
        raise RuntimeError(f"TFDS did not write {target}/dataset_info.json")
    return target


# ------------------------------------------------------------------------------------------------ reading
def find_dataset(path: str) -> str:
    """The folder holding dataset_info.json: ``path`` itself, the dataset ``prepare --out path`` wrote, or the
    only NAME/VERSION folder below ``path``."""
    if not path:
        raise ValueError("no prepared dataset given: set --config.data.dir to the output folder of "
                         "`python -m microemo_jax.prepare`")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"prepared dataset folder {path!r} does not exist")
    for candidate in (path, dataset_dir(path)):
        if os.path.isfile(os.path.join(candidate, 'dataset_info.json')):
            return candidate
    found = sorted(os.path.dirname(p) for pattern in ('*/*', '*/*/*')
                   for p in glob.glob(os.path.join(glob.escape(path), pattern, 'dataset_info.json')))
    if not found:
        raise ValueError(f"{path} is not a prepared dataset (no dataset_info.json in it or below it); make one "
                         f"with `python -m microemo_jax.prepare --out {path} ...`")
    if len(found) > 1:
        raise ValueError(f"{path} holds several prepared datasets {found}; pass one of them")
    return found[0]


class CheckedBuilder(ReadOnlyBuilder, skip_registration=True):
    """``tfds.builder_from_directory`` with our feature spec: the folder's is checked, never imported from."""

    def __init__(self, builder_dir: str):
        super().__init__(builder_dir, info_proto=info_proto(builder_dir))
        self._original_state = dict(builder_dir=builder_dir)   # unpickling (Grain workers) checks again


def _builder(path: str):
    return CheckedBuilder(find_dataset(path))


def splits(out: str) -> list[str]:
    """The splits the prepared dataset has (a tiny corpus may have no validation or test clip)."""
    return sorted(_builder(out).info.splits)


def open_dataset(out: str, split: str):
    """Random-access numpy source of one split of the dataset prepared into ``out``."""
    builder = _builder(out)
    if split not in builder.info.splits:
        raise ValueError(f"{out}: the prepared dataset has no split {split!r}; it has {sorted(builder.info.splits)}")
    try:
        return builder.as_data_source(split=split)
    except Exception as e:  # e.g. written in another file format
        raise ValueError(f"{out}: split {split!r} cannot be opened as a random-access source ({e}); "
                         f"prepare writes ArrayRecord, re-run `python -m microemo_jax.prepare`") from e
