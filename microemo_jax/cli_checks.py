"""Every command line's arguments checked up front: one line ``error: --flag VALUE: what is wrong``, exit status 2.

The commands build their parsers with ``Parser`` and give each argument one of the types below, so a bad
value is refused before anything is loaded, generated or written (an ``--out`` that is a file is refused
before the model runs, not after), and never shows a traceback. ``Parser.error`` prints argparse's own
messages (a missing argument, a bad choice) on one line too.
"""
from __future__ import annotations

import argparse
import math
import os
import re

MESH_AXES = ('data', 'fsdp', 'tensor')   # sharding.MESH_AXES (not imported: plan sets the device count before JAX)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: --flag VALUE: what is wrong`` on stderr, exit status 2."""

    def error(self, message: str):
        found = re.match(r"argument ([^:]+): (.*)", message, re.S)
        if found:                                    # argparse's 'argument --flag: ...' -> '--flag VALUE: ...'
            flag, rest = found.group(1).split('/')[0], found.group(2)
            choice = re.match(r"invalid choice: '?(.*?)'? \(choose from (.*)\)$", rest, re.S)
            typed = re.match(r"invalid \S+ value: '?(.*?)'?$", rest, re.S)
            if choice:
                rest = f"{choice.group(1)}: not one of {choice.group(2)}"
            elif typed:
                rest = f"{typed.group(1)}: not a valid value"
            message = f"{flag} {rest}"
        self.exit(2, f"error: {' '.join(message.split())}\n")


def _bad(value, what: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{value}: {what}")


def _number(text: str, kind, what: str):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise _bad(text, f"is not {what}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(text, f"is not {what} (a finite number)")
    return value


def int_at_least(low: int):
    """An integer >= ``low``."""
    def check(text: str) -> int:
        value = _number(text, int, 'an integer')
        if value < low:
            raise _bad(text, f"must be an integer >= {low}")
        return value
    check.__name__ = f'int_at_least_{low}'
    return check


positive_int = int_at_least(1)
nonneg_int = int_at_least(0)


def even_int_at_least(low: int):
    def check(text: str) -> int:
        value = _number(text, int, 'an integer')
        if value < low or value % 2:
            raise _bad(text, f"must be an even integer >= {low}")
        return value
    return check


def positive_float(text: str) -> float:
    value = _number(text, float, 'a number')
    if value <= 0:
        raise _bad(text, "must be a number > 0")
    return value


def nonneg_float(text: str) -> float:
    value = _number(text, float, 'a number')
    if value < 0:
        raise _bad(text, "must be a number >= 0")
    return value


def probability(text: str) -> float:
    """A number in (0, 1] (nucleus sampling's top-p)."""
    value = _number(text, float, 'a number')
    if not 0 < value <= 1:
        raise _bad(text, "must be a number in (0, 1]")
    return value


def port(text: str) -> int:
    value = _number(text, int, 'a port number')
    if not 0 <= value <= 65535:
        raise _bad(text, "must be a port number in 0..65535 (0: any free port)")
    return value


def existing_dir(text: str) -> str:
    if not os.path.isdir(text):
        raise _bad(text, "is a file, not a folder" if os.path.exists(text) else "no such folder")
    return text


def existing_file(text: str) -> str:
    if not os.path.isfile(text):
        raise _bad(text, "is a folder, not a file" if os.path.isdir(text) else "no such file")
    return text


def existing_path(text: str) -> str:
    if not os.path.exists(text):
        raise _bad(text, "no such file or folder")
    return text


def out_dir(text: str) -> str:
    """An output folder: new (its parent may be made) or an existing folder, never a file."""
    if not text:
        raise _bad(repr(text), "name an output folder")
    if os.path.lexists(text) and not os.path.isdir(text):
        raise _bad(text, "exists and is not a folder; name a new or existing folder")
    parent = _nearest_existing(text)
    if not os.path.isdir(parent):
        raise _bad(text, f"cannot be made: {parent} is a file")
    return text


def out_file(text: str) -> str:
    """An output file: not a folder, and where its folder exists or can be made."""
    if not text or text.endswith(('/', os.sep)):
        raise _bad(text or repr(text), "name an output file")
    if os.path.isdir(text):
        raise _bad(text, "is a folder; name a file")
    parent = _nearest_existing(os.path.dirname(os.path.abspath(text)))
    if not os.path.isdir(parent):
        raise _bad(text, f"cannot be written: {parent} is a file")
    return text


def _nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path


def mesh_spec(text: str) -> dict[str, int]:
    """``AXIS=SIZE[,AXIS=SIZE]`` over the axes data, fsdp, tensor; each size an integer >= 1, each axis once."""
    sizes = {}
    for part in text.split(','):
        name, sep, value = (s.strip() for s in part.partition('='))
        if not sep or not name:
            raise _bad(text, "write AXIS=SIZE[,AXIS=SIZE], e.g. fsdp=8 or data=2,fsdp=4")
        if name not in MESH_AXES:
            raise _bad(text, f"axis {name!r} is not one of {', '.join(MESH_AXES)}")
        if name in sizes:
            raise _bad(text, f"axis {name!r} is given twice")
        try:
            size = int(value)
        except ValueError:
            raise _bad(text, f"size of {name} {value!r} is not an integer") from None
        if size < 1:
            raise _bad(text, f"size of {name} must be >= 1 (no -1 here: the mesh defines the device count)")
        sizes[name] = size
    return sizes


def fail(message) -> None:
    """Exit with one line, ``error: MESSAGE`` (status 1), as ``sys.exit`` prints it: for what only running finds
    (a file's contents, a mesh that cannot split the batch)."""
    raise SystemExit(f"error: {' '.join(str(message).split())}")
