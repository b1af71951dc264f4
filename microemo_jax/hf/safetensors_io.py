"""Reading Hugging Face checkpoint directories without PyTorch.

A directory holds ``config.json`` and either ``model.safetensors`` or shards listed in
``model.safetensors.index.json``. Tensors are read lazily, by a reader of the safetensors format written
here (``read_header``): every header is checked when the folder is opened (size, JSON, offsets inside
the file, bytes matching dtype x shape), bfloat16 and the float8 formats are read with ``ml_dtypes`` and
widened to float32, and complex tensors are refused. Full-model
checkpoints (e.g. ``Blip2ForConditionalGeneration``) hold a sub-model under a prefix
(``vision_model.``); ``HFCheckpoint.under(prefix)`` views it as if it were a standalone save.
Every error is a ``CheckpointError`` naming the file (or directory), the tensor and what was expected.
"""
from __future__ import annotations

import json
import math
import os
from typing import Iterable, NamedTuple

import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import nnx

from microemo_jax.hf.config_values import config_problem

SINGLE_FILE = 'model.safetensors'
INDEX_FILE = 'model.safetensors.index.json'


class CheckpointError(ValueError):
    """A checkpoint directory is missing, of the wrong kind, or lacks/mismatches tensors."""


# safetensors dtype names -> numpy dtypes (ml_dtypes for bfloat16 and the float8 formats). Narrow floats are
# widened to float32 on read; complex tensors are refused (a real parameter would drop the imaginary part).
_DTYPES = {
    'BOOL': np.dtype(np.bool_), 'U8': np.dtype('<u1'), 'I8': np.dtype('<i1'), 'U16': np.dtype('<u2'),
    'I16': np.dtype('<i2'), 'U32': np.dtype('<u4'), 'I32': np.dtype('<i4'), 'U64': np.dtype('<u8'),
    'I64': np.dtype('<i8'), 'F16': np.dtype('<f2'), 'F32': np.dtype('<f4'), 'F64': np.dtype('<f8'),
    'BF16': np.dtype(ml_dtypes.bfloat16), 'F8_E4M3': np.dtype(ml_dtypes.float8_e4m3fn),
    'F8_E5M2': np.dtype(ml_dtypes.float8_e5m2), 'F8_E8M0': np.dtype(ml_dtypes.float8_e8m0fnu),
    'F8_E4M3FNUZ': np.dtype(ml_dtypes.float8_e4m3fnuz), 'F8_E5M2FNUZ': np.dtype(ml_dtypes.float8_e5m2fnuz),
}
_WIDEN = {'BF16', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F8_E4M3FNUZ', 'F8_E5M2FNUZ'}
_COMPLEX = {'C64', 'C128', 'COMPLEX64', 'COMPLEX128'}
MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit


class _Entry(NamedTuple):
    dtype: str
    shape: tuple[int, ...]
    begin: int  # absolute file offsets of the tensor's bytes
    end: int


def read_header(file: str) -> dict[str, _Entry]:
    """Parse and check the header of a safetensors file: {tensor name: entry}. Raises CheckpointError naming
    the file (and the tensor) for anything that is not a well-formed safetensors header."""
    try:
        size = os.path.getsize(file)
        with open(file, 'rb') as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{file}: {size} bytes, too short for a safetensors file (truncated?)")
            n = int.from_bytes(head, 'little')
            if n > MAX_HEADER_BYTES or n > size - 8:
                raise CheckpointError(f"{file}: the safetensors header claims {n} bytes but the file has {size} "
                                      f"(limit {MAX_HEADER_BYTES}): not a safetensors file, or truncated")
            raw = f.read(n)
    except OSError as e:
        raise CheckpointError(f"{file}: cannot be read ({e.strerror or e})") from None
    header = _json_object(raw, 'utf-8', lambda e: f"{file}: malformed safetensors header (not JSON: {e})",
                          lambda kind: f"{file}: malformed safetensors header (a JSON {kind}, expected an object "
                                       f"of tensors)")
    data_start, data_size = 8 + n, size - 8 - n
    entries = {}
    for name, meta in header.items():
        if name == '__metadata__':
            continue
        where = f"{file}: tensor {name!r}"
        if not isinstance(meta, dict):
            raise CheckpointError(f"{where}: malformed header entry {meta!r}")
        dtype, shape, offsets = meta.get('dtype'), meta.get('shape'), meta.get('data_offsets')
        if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                for d in shape)):
            raise CheckpointError(f"{where}: malformed shape {shape!r} in the header")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(
                isinstance(o, int) and not isinstance(o, bool) for o in offsets) and 0 <= offsets[0] <= offsets[1]):
            raise CheckpointError(f"{where}: malformed data_offsets {offsets!r} in the header")
        if offsets[1] > data_size:
            raise CheckpointError(f"{where}: its bytes end at {offsets[1]} but the file holds only {data_size} "
                                  f"bytes of tensor data (truncated file?)")
        if dtype in _DTYPES:
            expected = math.prod(shape) * _DTYPES[dtype].itemsize   # Python ints: a huge shape cannot wrap
            if offsets[1] - offsets[0] != expected:
                raise CheckpointError(f"{where}: {offsets[1] - offsets[0]} bytes in the file, but dtype {dtype} "
                                      f"and shape {tuple(shape)} need {expected}")
        elif not isinstance(dtype, str):
            raise CheckpointError(f"{where}: malformed dtype {dtype!r} in the header")
        entries[name] = _Entry(dtype, tuple(shape), data_start + offsets[0], data_start + offsets[1])
    return entries


def _read_tensor(file: str, name: str, entry: _Entry) -> np.ndarray:
    """The tensor's array; bfloat16 and float8 are widened to float32."""
    where = f"{file}: tensor {name!r}"
    if entry.dtype.upper() in _COMPLEX:
        raise CheckpointError(f"{where} is complex ({entry.dtype}); model parameters are real and the imaginary "
                              f"part would be lost: refusing to load it")
    if entry.dtype not in _DTYPES:
        raise CheckpointError(f"{where} has dtype {entry.dtype!r}, which this loader does not read "
                              f"(supported: {', '.join(sorted(_DTYPES))})")
    try:
        with open(file, 'rb') as f:
            f.seek(entry.begin)
            raw = f.read(entry.end - entry.begin)
    except OSError as e:
        raise CheckpointError(f"{where}: cannot be read ({e.strerror or e})") from None
    if len(raw) != entry.end - entry.begin:
        raise CheckpointError(f"{where}: the file ends inside the tensor's bytes (truncated file)")
    arr = np.frombuffer(raw, dtype=_DTYPES[entry.dtype]).reshape(entry.shape)
    if entry.dtype in _WIDEN:
        return arr.astype(np.float32)
    return arr.astype(arr.dtype.newbyteorder('='), copy=True)  # native byte order, writable


def _read_json(file: str, what: str):
    try:
        with open(file, 'rb') as f:
            raw = f.read()
    except OSError as e:
        raise CheckpointError(f"{file}: cannot be read ({e.strerror or e})") from None
    return _json_object(raw, 'utf-8-sig', lambda e: f"{file}: {what} is not valid JSON ({e})",
                        lambda kind: f"{file}: {what} is a JSON {kind}, expected an object")


def _json_object(raw: bytes, encoding: str, not_json, not_object) -> dict:
    """``raw`` parsed as a JSON object, else a CheckpointError with ``not_json(error)`` / ``not_object(kind)``."""
    try:
        value = json.loads(raw.decode(encoding))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(not_json(e)) from None
    if not isinstance(value, dict):
        raise CheckpointError(not_object(type(value).__name__))
    return value


class HFCheckpoint:
    """Lazy view of the tensors of one checkpoint directory, optionally under a name prefix."""

    def __init__(self, path: str | os.PathLike, prefix: str = ''):
        self.path = os.fspath(path)
        if not os.path.isdir(self.path):
            raise CheckpointError(f"{self.path}: not a directory (expected a Hugging Face checkpoint folder "
                                  f"with config.json and {SINGLE_FILE} or {INDEX_FILE})")
        config_path = os.path.join(self.path, 'config.json')
        if not os.path.isfile(config_path):
            raise CheckpointError(f"{self.path}: no config.json")
        self.config = _read_json(config_path, 'config.json')
        problem = config_problem(self.config, config_path)   # sizes, ids, eps, dropouts: type and range
        if problem:
            raise CheckpointError(problem)
        self._file_of, self._headers = _tensor_files(self.path)
        self.prefix = prefix

    def under(self, prefix: str) -> 'HFCheckpoint':
        """The same checkpoint seen through ``prefix`` (e.g. 'vision_model.')."""
        view = object.__new__(HFCheckpoint)
        view.__dict__.update(self.__dict__)
        view.prefix = self.prefix + prefix
        return view

    def names(self) -> list[str]:
        """Tensor names under the current prefix, with the prefix removed."""
        n = len(self.prefix)
        return sorted(k[n:] for k in self._file_of if k.startswith(self.prefix))

    def has(self, name: str) -> bool:
        return self.prefix + name in self._file_of

    def has_prefix(self, prefix: str) -> bool:
        full = self.prefix + prefix
        return any(k.startswith(full) for k in self._file_of)

    def get(self, name: str, shape: Iterable[int] | None = None) -> np.ndarray:
        """Tensor ``name`` as a numpy array (bfloat16 and float8 are widened to float32), shape-checked."""
        full = self.prefix + name
        if full not in self._file_of:
            raise CheckpointError(f"{self.path}: tensor {full!r} is missing "
                                  f"({len(self._file_of)} tensors present; is this the right kind of checkpoint?)")
        fname = self._file_of[full]
        file = os.path.join(self.path, fname)
        entry = self._headers[fname].get(full)
        if entry is None:
            raise CheckpointError(f"{file}: tensor {full!r} is listed for this file in {INDEX_FILE} but the file "
                                  f"does not hold it")
        arr = _read_tensor(file, full, entry)
        if shape is not None and tuple(arr.shape) != tuple(shape):
            raise CheckpointError(f"{file}: tensor {full!r} has shape {tuple(arr.shape)}, "
                                  f"expected {tuple(shape)} from config.json")
        return arr


def _tensor_files(path: str) -> tuple[dict[str, str], dict[str, dict[str, _Entry]]]:
    """({tensor name: file name}, {file name: checked header}) of a single-file or sharded checkpoint."""
    index = os.path.join(path, INDEX_FILE)
    if os.path.isfile(index):
        weight_map = _read_json(index, INDEX_FILE).get('weight_map')
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise CheckpointError(f"{index}: no 'weight_map' object of tensor name -> file name")
        headers = {}
        for fname in sorted(set(weight_map.values())):
            if os.path.basename(fname) != fname or fname in ('', '.', '..'):
                raise CheckpointError(f"{index}: shard {fname!r} is not a plain file name in this folder")
            if not os.path.isfile(os.path.join(path, fname)):
                raise CheckpointError(f"{path}: shard {fname} listed in {INDEX_FILE} is missing")
            headers[fname] = read_header(os.path.join(path, fname))
        return dict(weight_map), headers
    single = os.path.join(path, SINGLE_FILE)
    if os.path.isfile(single):
        header = read_header(single)
        return {k: SINGLE_FILE for k in header}, {SINGLE_FILE: header}
    raise CheckpointError(f"{path}: neither {SINGLE_FILE} nor {INDEX_FILE} found")


def config_of(ckpt: HFCheckpoint, *, model_types: dict[str, str | None], what: str) -> tuple[dict, str]:
    """Pick the sub-config and tensor prefix for ``what`` from a standalone or full-model config.

    ``model_types`` maps an accepted ``model_type`` to the key of the nested sub-config (None when the
    checkpoint is the standalone module). Returns (config dict, prefix key). Raises a CheckpointError
    naming the type found and those accepted.
    """
    model_type = ckpt.config.get('model_type')
    if model_type not in model_types:
        raise CheckpointError(f"{ckpt.path}: config.json has model_type {model_type!r}; {what} needs one of "
                              f"{sorted(model_types)}")
    sub = model_types[model_type]
    if sub is None:
        return ckpt.config, model_type
    cfg = ckpt.config.get(sub)
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{ckpt.path}: config.json of a {model_type!r} model has no {sub!r} section")
    return cfg, model_type


def assign(var: nnx.Variable, value: np.ndarray, *, where: str) -> None:
    """Set a parameter from a checkpoint array, checking the shape and keeping the parameter's dtype."""
    current = var.get_value()
    if tuple(current.shape) != tuple(value.shape):
        raise CheckpointError(f"{where}: shape {tuple(value.shape)} does not fit parameter of shape "
                              f"{tuple(current.shape)}")
    var.set_value(jnp.asarray(value, dtype=current.dtype))


def stack(arrays: list[np.ndarray]) -> np.ndarray:
    """Per-layer arrays -> one array with a leading layers axis (for scanned stacks)."""
    return np.stack(arrays, axis=0)
