"""Read an .npz whose arrays hold pickled Python objects without running arbitrary code.

MER ships ``wheel_mapping.npz`` as 0-d object arrays: each is a pickle of the array with plain dicts
and lists inside. ``np.load(allow_pickle=True)`` would run whatever a tampered file asks for; this
unpickler resolves only numpy's array and scalar reconstruction and set/frozenset, and refuses every other
global before anything is called. Plain containers and strings need no global at all.
"""
from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
from numpy.lib import format as npy_format

try:                                   # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:                    # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar

_ALLOWED = {
    ('numpy.core.multiarray', '_reconstruct'): _reconstruct,
    ('numpy._core.multiarray', '_reconstruct'): _reconstruct,
    # numpy scalars (np.float64 valence, np.int64 class index in AffectGPT's label corpora): built from
    # their dtype and raw bytes, or for object dtype from an object the restricted unpickler already built.
    ('numpy.core.multiarray', 'scalar'): scalar,
    ('numpy._core.multiarray', 'scalar'): scalar,
    ('numpy', 'ndarray'): np.ndarray,
    ('numpy', 'dtype'): np.dtype,
    ('builtins', 'set'): set, ('__builtin__', 'set'): set,
    ('builtins', 'frozenset'): frozenset, ('__builtin__', 'frozenset'): frozenset,
}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for something other than numpy arrays and plain containers."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, where: str):
        super().__init__(file)
        self.where = where

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.where}: refusing to load: the pickle asks for {module}.{name}, but only numpy "
                f"arrays and plain containers (dict, list, str, numbers, set) are allowed. The file is not "
                f"a plain MER mapping; do not load it with allow_pickle=True.") from None

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.where}: refusing to load: the pickle uses persistent ids")


def _read_member(raw: bytes, where: str):
    f = io.BytesIO(raw)
    version = npy_format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = npy_format.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = npy_format.read_array_header_2_0(f)
    else:
        raise ValueError(f"{where}: unsupported .npy version {version}")
    if not dtype.hasobject:
        f.seek(0)
        return npy_format.read_array(f, allow_pickle=False)
    try:
        arr = _RestrictedUnpickler(f, where).load()
    except UnsafePickleError:
        raise
    except Exception as e:  # a truncated or corrupt pickle
        raise ValueError(f"{where}: unreadable pickled array ({type(e).__name__}: {e})") from None
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{where}: the pickle holds {type(arr).__name__}, expected a numpy array")
    return arr


def load_npz_objects(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of the .npz at ``path``, object arrays unpickled with the restricted unpickler."""
    path = os.fspath(path)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"{path}: not an .npz (zip) file") from None
    out = {}
    with zf:
        for info in zf.infolist():
            if not info.filename.endswith('.npy'):
                continue
            key = info.filename[:-len('.npy')]
            out[key] = _read_member(zf.read(info), f"{path}[{key}]")
    return out
