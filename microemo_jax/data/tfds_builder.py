"""The prepared dataset as a TFDS ArrayRecord dataset (raw Tensor/Text features, no TensorFlow).

``prepare`` first turns clips into records and stores them shard by shard under ``OUT/work/``
(so an interrupted run resumes without decoding again); this builder then only copies those records
into TFDS's ArrayRecord files, split into ``train`` and ``validation`` by a stable hash of the name.
Readers use ``tfds.builder_from_directory(dataset_dir(OUT)).as_data_source(split)`` (random access,
numpy dicts, what Grain wants).
"""
from __future__ import annotations

import glob
import hashlib
import os
import pickle

import numpy as np
import tensorflow_datasets as tfds

from microemo_jax.data.record import FIELDS, TEXT_FIELDS

NAME = 'microemo_clips'
VERSION = '1.0.0'


def features(num_crops: int, timestamp_tokens: int, num_mel_bins: int) -> tfds.features.FeaturesDict:
    """TFDS features for the record schema; only the first axis of each tensor varies."""
    trailing = {'face_mask': (num_crops,), 'face_boxes': (4,), 'audio_mel': (num_mel_bins,),
                'utterances': (2,), 'timestamp_ids': (timestamp_tokens,), 'timestamp_mask': (timestamp_tokens,)}
    feats = {}
    for key, (dtype, rank) in FIELDS.items():
        shape = (None,) + trailing.get(key, ())
        assert len(shape) == rank, key
        feats[key] = tfds.features.Tensor(shape=shape, dtype=dtype)
    for key in TEXT_FIELDS:
        feats[key] = tfds.features.Text()
    return tfds.features.FeaturesDict(feats)


def split_of(name: str, validation_fraction: float) -> str:
    """'validation' for a stable ``validation_fraction`` of names, else 'train'."""
    h = int.from_bytes(hashlib.sha256(name.encode('utf-8')).digest()[:8], 'big') / 2 ** 64
    return 'validation' if h < validation_fraction else 'train'


def iter_shard_records(work_dir: str):
    """Records of every finished shard file, in shard order."""
    for path in sorted(glob.glob(os.path.join(work_dir, 'shard-*.pkl'))):
        with open(path, 'rb') as f:
            shard = pickle.load(f)
        yield from shard['records']


class MicroEmoClips(tfds.core.GeneratorBasedBuilder):
    """Prepared MicroEmo clips; built from ``work_dir`` shard files."""

    VERSION = tfds.core.Version(VERSION)

    def __init__(self, *, work_dir: str, num_crops: int, timestamp_tokens: int, num_mel_bins: int,
                 validation_fraction: float, description: str = '', **kwargs):
        self._work_dir = work_dir
        self._dims = (num_crops, timestamp_tokens, num_mel_bins)
        self._validation_fraction = validation_fraction
        self._description = description
        super().__init__(**kwargs)

    @property
    def name(self) -> str:  # TFDS derives names from the class; keep a stable snake_case name
        return NAME

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, description=self._description, features=features(*self._dims))

    def _split_generators(self, dl_manager):
        # TFDS cannot write an empty split: a tiny corpus may have no validation clip.
        present = {split_of(r['name'], self._validation_fraction) for r in iter_shard_records(self._work_dir)}
        return {split: self._generate_examples(split) for split in ('train', 'validation') if split in present}

    def _generate_examples(self, split):
        for rec in iter_shard_records(self._work_dir):
            if split_of(rec['name'], self._validation_fraction) == split:
                yield rec['name'], {k: rec[k] for k in list(FIELDS) + list(TEXT_FIELDS)}


def dataset_dir(out: str) -> str:
    """Folder holding dataset_info.json of the prepared dataset under ``out``."""
    return os.path.join(out, 'tfds', NAME, VERSION)


def build(out: str, **kwargs) -> str:
    """(Re)build the TFDS dataset from ``out/work`` shards; returns ``dataset_dir(out)``."""
    import shutil
    if next(iter_shard_records(os.path.join(out, 'work')), None) is None:
        raise ValueError(f"no clip could be prepared into {out}: every input was skipped (see skipped.jsonl)")
    target = dataset_dir(out)
    shutil.rmtree(os.path.join(out, 'tfds'), ignore_errors=True)
    builder = MicroEmoClips(work_dir=os.path.join(out, 'work'), data_dir=os.path.join(out, 'tfds'),
                            file_format='array_record', **kwargs)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(verify_ssl=False))
    if not os.path.isfile(os.path.join(target, 'dataset_info.json')):
        raise RuntimeError(f"TFDS did not write {target}/dataset_info.json")
    return target


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


def _builder(path: str):
    return tfds.builder_from_directory(find_dataset(path))


def splits(out: str) -> list[str]:
    """The splits the prepared dataset has (a tiny corpus may have no validation clip)."""
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
