"""Reading an Orbax checkpoint so that a failure is one short message, not a wall of tracebacks.

Shared by the two kinds of Orbax folders: run checkpoints (``training/checkpointing``) and parameter
folders (``params``). A read fails in one of two ways that the caller treats differently: the files are
damaged (skip it, or say "copy it again") or they read fine but do not fit the target (the config
changed: stop and say what differs). ``is_mismatch`` tells them apart from Orbax's message.
"""
from __future__ import annotations

import gc
import logging
import sys

# Orbax's messages when a readable checkpoint does not fit the restore target (a config change, not damage).
_MISMATCH_MARKERS = ('tree structures do not match', 'is not compatible with the stored shape')


def is_mismatch(error: BaseException) -> bool:
    """Whether an Orbax restore error says "this does not fit" rather than "this cannot be read"."""
    return any(m in str(error) for m in _MISMATCH_MARKERS)


def short(error: BaseException, limit: int = 300) -> str:
    """An error's text on one line, cut at ``limit`` characters (Orbax's messages run to pages)."""
    text = ' '.join(str(error).split())
    return text if len(text) <= limit else text[:limit] + ' ...'


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
