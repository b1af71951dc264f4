"""Checksums of a folder of weights: written when the folder is saved, verified before it is read.

Orbax reads a bit-flipped array without complaint (the values are simply different), so a damaged run
checkpoint or parameter folder would otherwise train or answer with weights nobody saved. ``stamp(folder)``
writes ``folder/checksums.json``: the size and SHA-256 of every file under the folder. ``verify(folder)``
re-reads every file and raises ``ChecksumError`` naming the first one that is missing, changed or added;
it returns False (nothing checked) when the folder has no ``checksums.json`` (written before checksums
existed). Each file is read once, streamed in 1 MiB blocks, several files at a time (hashlib releases
the GIL), so verifying costs about one read of the folder.

A folder written before checksums existed can be stamped once it is known to be good::

    python -c "from microemo_jax.checksums import stamp; stamp('runs/demo/stage2/params')"

Files a folder may gain without its weights changing are not checked: names starting with '.' (e.g.
``.DS_Store``) and ``commit_success.txt`` (Orbax's commit marker). ``stamp(folder, unchecked=...)`` leaves
out files that are rewritten after the stamp (a run checkpoint's ``_CHECKPOINT_METADATA`` gets its commit
time); the manifest lists them, so ``verify`` skips the same ones.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os

MANIFEST = 'checksums.json'
FORMAT = 1
_IGNORED = frozenset({MANIFEST, 'commit_success.txt'})
_BLOCK = 1 << 20


class ChecksumError(RuntimeError):
    """A file of a stamped folder is missing, changed or was added after the folder was written."""

    def __init__(self, folder: str, file: str, why: str):
        super().__init__(f"{os.path.join(folder, file)} {why}")
        self.folder, self.file, self.why = folder, file, why


def _files(folder: str, unchecked=()) -> list[str]:
    """Every regular file under ``folder`` (relative, '/'-separated, sorted) except the ignored and unchecked ones."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        for name in files:
            if name in _IGNORED or name.startswith('.'):
                continue
            rel = os.path.relpath(os.path.join(root, name), folder).replace(os.sep, '/')
            if rel not in unchecked:
                out.append(rel)
    return sorted(out)


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(_BLOCK), b''):
            h.update(block)
    return h.hexdigest()


def _digests(folder: str, names: list[str]) -> dict[str, str]:
    workers = max(1, min(8, len(names), os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return dict(zip(names, pool.map(lambda n: file_digest(os.path.join(folder, n)), names)))


def stamp(folder: str, *, unchecked: tuple[str, ...] = ()) -> dict:
    """Write ``folder/checksums.json`` for every file now in ``folder`` but ``unchecked`` (relative paths, recorded
    as such); returns the manifest."""
    folder = os.path.abspath(folder)
    names = _files(folder, unchecked)
    digests = _digests(folder, names)
    manifest = {'format': FORMAT, 'algorithm': 'sha256', 'unchecked': sorted(unchecked),
                'files': {n: {'size': os.path.getsize(os.path.join(folder, n)), 'sha256': digests[n]} for n in names}}
    tmp = os.path.join(folder, f'.{MANIFEST}.tmp')
    with open(tmp, 'w') as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(folder, MANIFEST))
    return manifest


def is_stamped(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, MANIFEST))


def _manifest(folder: str) -> tuple[dict, tuple[str, ...]]:
    """(files, unchecked) of ``folder/checksums.json``."""
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path) as f:
            manifest = json.load(f)
        files, unchecked = manifest['files'], manifest.get('unchecked', [])
        if not isinstance(files, dict) or not all(isinstance(v, dict) and isinstance(v.get('sha256'), str)
                                                  and isinstance(v.get('size'), int) for v in files.values()):
            raise ValueError('files must map each name to its size and sha256')
        if not isinstance(unchecked, list) or not all(isinstance(n, str) for n in unchecked):
            raise ValueError('unchecked must be a list of file names')
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ChecksumError(folder, MANIFEST, f"cannot be read ({e})") from None
    return files, tuple(unchecked)


def verify(folder: str) -> bool:
    """True when every file matches ``checksums.json``; False when there is none; else ``ChecksumError``."""
    folder = os.path.abspath(folder)
    if not is_stamped(folder):
        return False
    expected, unchecked = _manifest(folder)
    present = _files(folder, unchecked)
    added = sorted(set(present) - set(expected))
    if added:
        raise ChecksumError(folder, added[0], f"is not in {MANIFEST}: it was added after the folder was written")
    for name, entry in sorted(expected.items()):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise ChecksumError(folder, name, f"is missing (listed in {MANIFEST})")
        size = os.path.getsize(path)
        if size != entry['size']:
            raise ChecksumError(folder, name, f"has {size} bytes, {entry['size']} were written: the file is "
                                              f"truncated or damaged")
    digests = _digests(folder, sorted(expected))
    for name, entry in sorted(expected.items()):
        if digests[name] != entry['sha256']:
            raise ChecksumError(folder, name, f"does not match its checksum in {MANIFEST}: its bytes changed "
                                              f"after it was written (a damaged disk or copy)")
    return True
