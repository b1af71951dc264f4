"""Reading Hugging Face checkpoint directories without PyTorch.

A directory holds ``config.json`` and either ``model.safetensors`` or shards listed in
``model.safetensors.index.json``. Tensors are read lazily with ``safetensors.numpy``. Full-model
checkpoints (e.g. ``Blip2ForConditionalGeneration``) hold a sub-model under a prefix
(``vision_model.``); ``HFCheckpoint.under(prefix)`` views it as if it were a standalone save.
Every error names the directory, the tensor and what was expected.
"""
from __future__ import annotations

import json
import os
from typing import Iterable

import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors import safe_open

SINGLE_FILE = 'model.safetensors'
INDEX_FILE = 'model.safetensors.index.json'


class CheckpointError(ValueError):
    """A checkpoint directory is missing, of the wrong kind, or lacks/mismatches tensors."""


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
        with open(config_path) as f:
            self.config = json.load(f)
        self._file_of = _tensor_files(self.path)
        self.prefix = prefix
        self._handles: dict[str, object] = {}

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
        """Tensor ``name`` as a numpy array (bfloat16 is widened to float32), shape-checked."""
        full = self.prefix + name
        if full not in self._file_of:
            raise CheckpointError(f"{self.path}: tensor {full!r} is missing "
                                  f"({len(self._file_of)} tensors present; is this the right kind of checkpoint?)")
        fname = self._file_of[full]
        if fname not in self._handles:
            self._handles[fname] = safe_open(os.path.join(self.path, fname), framework='numpy')
        try:
            arr = self._handles[fname].get_tensor(full)
        except TypeError:  # numpy has no bfloat16: read raw and widen
            arr = _read_bf16(os.path.join(self.path, fname), full)
        if shape is not None and tuple(arr.shape) != tuple(shape):
            raise CheckpointError(f"{self.path}: tensor {full!r} has shape {tuple(arr.shape)}, "
                                  f"expected {tuple(shape)} from config.json")
        return arr


def _tensor_files(path: str) -> dict[str, str]:
    index = os.path.join(path, INDEX_FILE)
    if os.path.isfile(index):
        with open(index) as f:
            weight_map = json.load(f).get('weight_map')
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{index}: no 'weight_map' object")
        for fname in set(weight_map.values()):
            if not os.path.isfile(os.path.join(path, fname)):
                raise CheckpointError(f"{path}: shard {fname} listed in {INDEX_FILE} is missing")
        return dict(weight_map)
    single = os.path.join(path, SINGLE_FILE)
    if os.path.isfile(single):
        with safe_open(single, framework='numpy') as f:
            return {k: SINGLE_FILE for k in f.keys()}
    raise CheckpointError(f"{path}: neither {SINGLE_FILE} nor {INDEX_FILE} found")


def _read_bf16(file: str, name: str) -> np.ndarray:
    import ml_dtypes
    with open(file, 'rb') as f:
        header_len = int.from_bytes(f.read(8), 'little')
        header = json.loads(f.read(header_len))
        meta = header[name]
        start, end = meta['data_offsets']
        f.seek(8 + header_len + start)
        raw = f.read(end - start)
    if meta['dtype'] != 'BF16':
        raise CheckpointError(f"{file}: tensor {name!r} has unsupported dtype {meta['dtype']}")
    return np.frombuffer(raw, dtype=ml_dtypes.bfloat16).reshape(meta['shape']).astype(np.float32)


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
