"""Orbax checkpoints of model parameters (the format ``convert`` writes and training starts from).

A checkpoint folder holds ``params/`` (an Orbax PyTree of the nnx.Param state, restored onto any
mesh by passing abstract arrays with shardings), ``model_config.json`` (the ``model`` section of the
config it was made for) and, from ``convert``, ``sources.json``.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import sys

import jax
import orbax.checkpoint as ocp
from flax import nnx


class ParamsUnreadable(ValueError):
    """A parameter checkpoint folder exists but cannot be read (truncated or damaged files)."""


def unreadable(path: str, error: BaseException) -> ParamsUnreadable:
    """One clear error for a damaged parameter folder (instead of Orbax's wall of per-array tracebacks)."""
    text = ' '.join(str(error).split())
    text = text if len(text) <= 300 else text[:300] + ' ...'
    return ParamsUnreadable(f"{path}: the parameter checkpoint cannot be read; a file in it is truncated or "
                            f"damaged ({text}). Copy or export it again "
                            f"(`python -m microemo_jax.convert`, or the run's WORKDIR/params).")


# Orbax's messages when a readable checkpoint does not fit the restore target (a config change, not damage).
_MISMATCH_MARKERS = ('tree structures do not match', 'is not compatible with the stored shape')


def is_mismatch(error: BaseException) -> bool:
    """Whether an Orbax restore error says "this does not fit" rather than "this cannot be read"."""
    return any(m in str(error) for m in _MISMATCH_MARKERS)


class ReadFailure(Exception):
    """What an Orbax read raised, kept as text only (its traceback would keep Orbax's tasks alive)."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind, self.message = kind, message


def _orbax_noise(unraisable) -> bool:
    """Errors of Orbax/TensorStore read coroutines abandoned after the first failure, reported at garbage
    collection ("Exception ignored in: <coroutine ... _read_array_index_and_device_put>") one per array."""
    code = getattr(unraisable.object, 'cr_code', None) or getattr(unraisable.object, 'gi_code', None)
    where = getattr(code, 'co_filename', '') or ''
    return 'orbax' in where or 'tensorstore' in where or 'Encountered error while reading' in str(
        unraisable.exc_value)


def read_quietly(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), None)``, or ``(None, ReadFailure)`` when it raised.

    A damaged checkpoint makes Orbax fail once per array, in asyncio tasks that log and print their own
    tracebacks (dozens of them, interleaved). While ``fn`` runs, and until its abandoned tasks are
    collected, those logs and prints are dropped; the caller reports the one failure returned.
    """
    loggers = [logging.getLogger(n) for n in ('absl', 'orbax', 'orbax.checkpoint', 'asyncio')]
    levels = [lg.level for lg in loggers]
    previous_hook = sys.unraisablehook

    def hook(unraisable):
        if not _orbax_noise(unraisable):
            previous_hook(unraisable)
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    sys.unraisablehook = hook
    try:
        try:
            return fn(*args, **kwargs), None
        except Exception as e:  # noqa: BLE001  classified by the caller (is_mismatch) from the text
            failure = ReadFailure(type(e).__name__, ' '.join(str(e).split()))
        gc.collect()  # the traceback is gone: the abandoned read tasks are finalised here, under the filter
        return None, failure
    finally:
        sys.unraisablehook = previous_hook
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def save_params(path: str, model: nnx.Module, model_config, extra: dict | None = None) -> None:
    path = os.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    state = nnx.state(model, nnx.Param)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(os.path.join(path, 'params'), state, force=True)
        ckptr.wait_until_finished()
    with open(os.path.join(path, 'model_config.json'), 'w') as f:
        f.write(model_config.to_json_best_effort(indent=2))
    if extra:
        with open(os.path.join(path, 'sources.json'), 'w') as f:
            json.dump(extra, f, indent=2)


def restore_params(path: str, model: nnx.Module, shardings=None) -> nnx.Module:
    """Fill ``model``'s parameters from ``path`` (shapes must match; raises naming the first mismatch)."""
    path = os.path.abspath(path)
    params_dir = os.path.join(path, 'params')
    if not os.path.isdir(params_dir):
        raise FileNotFoundError(f"{path} is not a microemo-jax parameter checkpoint (no params/ folder)")
    target = nnx.state(model, nnx.Param)
    abstract = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype), target)
    if shardings is not None:
        abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
    with ocp.StandardCheckpointer() as ckptr:
        restored, error = read_quietly(ckptr.restore, params_dir, abstract)
    if error is not None:
        if is_mismatch(error):
            raise ValueError(f"{path}: checkpoint does not fit the model built from this config: {error}")
        raise unreadable(path, error)
    nnx.update(model, restored)
    return model
