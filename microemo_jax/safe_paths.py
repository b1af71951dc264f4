"""Paths under an output folder: a name a file gave us, or a link planted in the folder, never leads outside it.

Every writer and deleter that puts a file under an output folder (``--out``, a workdir) builds the path with
``inside`` or deletes with ``remove_inside``. Each name must be a safe file name (``unsafe_name_reason``: one
component, no ``..``, no separator, no control character), and the path, symbolic links followed, must stay
under the folder. So whatever a file in the folder says (a clip name in ``corpus.json``) and whatever stands in
it (a link in place of a sub-folder or a file), nothing outside the folder is written or deleted.
"""
from __future__ import annotations

import os
import re
import unicodedata

MAX_NAME_BYTES = 200   # leaves room for the suffixes we add (NAME.timeline.png) under the usual 255-byte limit


class OutsideFolderError(ValueError):
    """A path under an output folder that would lead outside it (or a name that is not one file name)."""


def unsafe_name_reason(name: str) -> str | None:
    """Why ``name`` could not be used as a file name inside an output directory (None: it is safe)."""
    if not isinstance(name, str):
        return f'is a {type(name).__name__}, not a name'
    if not name:
        return 'empty name'
    if '\x00' in name:
        return 'contains NUL'
    if any(unicodedata.category(c) == 'Cc' for c in name):
        return 'contains control characters'
    if any(unicodedata.category(c) == 'Cs' for c in name):
        return 'contains bytes that are not UTF-8'
    if '/' in name or '\\' in name or (os.sep in name) or (os.altsep and os.altsep in name):
        return 'contains a path separator'
    if name in ('.', '..'):
        return "is '.' or '..'"
    if name.startswith('.'):
        return "starts with '.'"
    if os.path.isabs(name) or re.match(r'^[A-Za-z]:', name):
        return 'is an absolute path or drive'
    if len(name.encode('utf-8', 'surrogatepass')) > MAX_NAME_BYTES:
        return f'is longer than {MAX_NAME_BYTES} bytes'
    return None


def _leads_out(root: str, path: str) -> str | None:
    """Where ``path`` really is when that is outside ``root`` (links followed), else None."""
    base, real = os.path.realpath(root), os.path.realpath(path)
    return None if os.path.commonpath([base, real]) == base else real


def _check_names(root: str, names: tuple[str, ...]) -> None:
    for name in names:
        why = unsafe_name_reason(name)
        if why:
            raise OutsideFolderError(f"{name!r} cannot be a file name under {root}: it {why}; refused (nothing "
                                     f"outside {root} is written or deleted)")


def inside(root: str, *names: str) -> str:
    """``root/names...``, refused (OutsideFolderError) unless each name is one safe file name and the path, links
    followed, stays under ``root``: what every writer builds its output paths with."""
    _check_names(root, names)
    path = os.path.join(root, *names)
    real = _leads_out(root, path)
    if real is not None:
        raise OutsideFolderError(f"{path} leads outside {root} (to {real}: a symbolic link?); refused (nothing "
                                 f"outside {root} is written or deleted): remove the link")
    return path


def remove_inside(root: str, *names: str) -> bool:
    """Delete the file ``root/names...`` if present (a link: the link itself, never what it points to), once the
    folder holding it is checked to be under ``root``. Returns whether something was deleted (never a folder)."""
    if not names:
        raise OutsideFolderError(f"no file named to delete under {root}")
    _check_names(root, names)
    path = os.path.join(inside(root, *names[:-1]), names[-1])
    if os.path.islink(path) or os.path.isfile(path):
        os.remove(path)
        return True
    return False
