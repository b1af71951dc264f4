"""The prepared dataset's feature spec, built from our code, and the check of a folder against it.

TFDS's ``builder_from_directory`` rebuilds a dataset's features from its ``features.json`` (or a ``features``
field of ``dataset_info.json``) and *imports the module that each ``pythonClassName`` names*: the folder would
choose the code that reads it. So TFDS never reads those files here. We read them as plain JSON, build the
spec from ``features()`` below with the sizes they state, refuse a folder whose spec is not exactly ours
(naming the folder and the first difference), and hand TFDS an info proto whose features are our own.
"""
from __future__ import annotations

import json
import os

import tensorflow_datasets as tfds
from google.protobuf import json_format
from tensorflow_datasets.core.proto import dataset_info_pb2

from microemo_jax.data.raw.splits import SPLITS
from microemo_jax.data.records.record import FIELDS, TEXT_FIELDS

NAME = 'microemo_clips'
VERSION = '1.0.0'
FILE_FORMAT = 'array_record'
FILEPATH_TEMPLATE = '{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}'   # TFDS's default, what prepare writes
# Which trailing axis of which tensor states each size the spec depends on.
_SIZES = {'num_crops': ('face_mask', 1), 'timestamp_tokens': ('timestamp_ids', 1), 'num_mel_bins': ('audio_mel', 1)}


def features(num_crops: int, timestamp_tokens: int, num_mel_bins: int) -> tfds.features.FeaturesDict:
    """TFDS features for the record schema; only the first axis of each tensor varies."""
    trailing = {'face_mask': (num_crops,), 'face_boxes': (4,), 'face_times': (num_crops,), 'audio_mel': (num_mel_bins,),
                'face_landmarks': (num_crops, 68, 2), 'face_landmark_mask': (num_crops,),
                'utterances': (2,), 'timestamp_ids': (timestamp_tokens,), 'timestamp_mask': (timestamp_tokens,)}
    feats = {}
    for key, (dtype, rank) in FIELDS.items():
        shape = (None,) + trailing.get(key, ())
        assert len(shape) == rank, key
        feats[key] = tfds.features.Tensor(shape=shape, dtype=dtype)
    for key in TEXT_FIELDS:
        feats[key] = tfds.features.Text()
    return tfds.features.FeaturesDict(feats)


def spec_json(num_crops: int, timestamp_tokens: int, num_mel_bins: int) -> dict:
    """``features.json`` as prepare writes it for these sizes (TFDS's ``save_config``, as a dict)."""
    return json_format.MessageToDict(features(num_crops, timestamp_tokens, num_mel_bins).to_proto())


def first_difference(theirs, ours, where: str = '') -> str | None:
    """Where ``theirs`` first differs from ``ours`` (a dotted key path and both values), or None."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(set(ours) | set(theirs)):
            at = f'{where}.{key}' if where else str(key)
            if key not in theirs:
                return f"{at} is missing"
            if key not in ours:
                return f"{at} is not in our spec"
            found = first_difference(theirs[key], ours[key], at)
            if found:
                return found
        return None
    if theirs != ours:
        return f"{where or 'the spec'} is {json.dumps(theirs)[:120]} where we write {json.dumps(ours)[:120]}"
    return None


def _refuse(folder: str, what: str) -> ValueError:
    return ValueError(f"{folder}: {what}; refused (a prepared dataset's spec is built from our code, never from "
                      f"the folder). Re-run `python -m microemo_jax.prepare` to write it again")


def _read_json(folder: str, name: str) -> dict:
    path = os.path.join(folder, name)
    try:
        with open(path, encoding='utf-8') as f:
            value = json.load(f)
    except FileNotFoundError:
        raise _refuse(folder, f"{name} is missing") from None
    except (OSError, ValueError) as e:
        raise _refuse(folder, f"{name} cannot be read ({type(e).__name__}: {e})") from None
    if not isinstance(value, dict):
        raise _refuse(folder, f"{name} is not a JSON object")
    return value


def _size(theirs: dict, folder: str, key: str, axis: int) -> int:
    try:
        dims = theirs['featuresDict']['features'][key]['tensor']['shape']['dimensions']
        size = int(dims[axis])
    except (KeyError, IndexError, TypeError, ValueError):
        raise _refuse(folder, f"features.json states no size for featuresDict.features.{key} axis {axis}") from None
    if not 0 < size <= 1 << 16:
        raise _refuse(folder, f"features.json: featuresDict.features.{key} axis {axis} is {size}")
    return size


def check_features(folder: str) -> dict[str, int]:
    """The sizes a folder's ``features.json`` states, once its whole spec equals ours for those sizes."""
    theirs = _read_json(folder, 'features.json')
    sizes = {name: _size(theirs, folder, key, axis) for name, (key, axis) in _SIZES.items()}
    diff = first_difference(theirs, spec_json(**sizes))
    if diff:
        raise _refuse(folder, f"its features.json differs from the spec this version writes: {diff}")
    return sizes


def check_info(folder: str) -> dataset_info_pb2.DatasetInfo:
    """The folder's ``dataset_info.json`` as a proto, once it names our dataset, format, splits and file names."""
    try:
        proto = json_format.ParseDict(_read_json(folder, 'dataset_info.json'), dataset_info_pb2.DatasetInfo())
    except json_format.ParseError as e:
        raise _refuse(folder, f"dataset_info.json is not a TFDS dataset info ({e})") from None
    facts = {'name': (proto.name, NAME), 'version': (proto.version, VERSION),
             'fileFormat': (proto.file_format, FILE_FORMAT)}
    for key, (got, want) in facts.items():
        if got != want:
            raise _refuse(folder, f"dataset_info.json: {key} is {got!r}, we write {want!r}")
    if proto.HasField('features'):
        raise _refuse(folder, "dataset_info.json holds a feature spec (features); ours is in features.json")
    for split in proto.splits:
        if split.name not in SPLITS:
            raise _refuse(folder, f"dataset_info.json: split {split.name!r} is not one of {', '.join(SPLITS)}")
        if split.filepath_template not in ('', FILEPATH_TEMPLATE):
            raise _refuse(folder, f"dataset_info.json: split {split.name!r} reads files "
                                  f"{split.filepath_template!r}, we write {FILEPATH_TEMPLATE!r}")
    return proto


def info_proto(folder: str) -> dataset_info_pb2.DatasetInfo:
    """What TFDS may read of ``folder``: its dataset info with our own feature spec in it (checked against the
    folder's). No name the folder chooses is imported, and no other module is named."""
    sizes = check_features(folder)
    proto = check_info(folder)
    proto.features.CopyFrom(features(**sizes).to_proto())
    proto.module_name = ''
    return proto
