"""One running process per folder: a lock file that names its holder.

    from microemo_jax.lock import DirLock, LockHeld
    with DirLock(out, 'prepare output folder'):   # raises LockHeld while another live run holds `out`
        ...

The lock is the file ``FOLDER/.lock`` holding JSON ``{pid, host, command, started, what, proc_start}``.
It is created atomically (a complete file appears at once, or not at all), held for as long as the
``with`` block runs and removed when it ends (also on an exception). A lock whose holder is gone (same
host, and that pid is not running, or it is running but is a different process that reused the pid)
is broken and taken over; breaking happens under a second, kernel-held guard lock and re-checks the
file, so two runs that both find a stale lock cannot both take it. A lock held from another host
cannot be checked from here: it is refused, and the message says which file to delete if that run is
known to be gone.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import socket
import sys
import uuid

LOCK_NAME = '.lock'


class LockHeld(RuntimeError):
    """Another live process holds the lock; ``holder`` is what its lock file says."""

    def __init__(self, message: str, holder: dict, path: str):
        super().__init__(message)
        self.holder = holder
        self.path = path


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid from its first owner."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as f:
            stat = f.read().decode('ascii', 'replace')
        return stat.rsplit(')', 1)[1].split()[19]  # field 22 overall; fields after the ")" of the command name
    except (OSError, IndexError):
        return None


def pid_alive(pid: int, proc_start: str | None = None) -> bool:
    """Whether ``pid`` runs on this host (and, when known, is the same process that started at ``proc_start``)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        pass
    except OSError:
        return False
    if proc_start is not None:
        now = _proc_start(pid)
        if now is not None and now != proc_start:
            return False  # the pid was reused by another process
    return True


def describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} (command: {holder.get('command', '?')}; "
            f"started {holder.get('started', '?')})")


class DirLock:
    """Context manager: hold ``FOLDER/.lock`` for the duration of the block (the folder is created if needed).

    ``what`` names the folder in messages, e.g. ``'prepare output folder'`` or ``'train workdir'``.
    Raises ``LockHeld`` when a live process holds it, ``NotADirectoryError`` when ``path`` is a file, and
    ``PermissionError``/``OSError`` (naming the path) when the lock file cannot be written.
    """

    def __init__(self, path: str, what: str = 'folder'):
        self.dir = os.path.abspath(path)
        self.what = what
        self.path = os.path.join(self.dir, LOCK_NAME)
        self._token = None
        self.broken: dict | None = None  # the stale holder this lock replaced, if any

    # ------------------------------------------------------------ public
    def acquire(self) -> 'DirLock':
        if os.path.exists(self.dir) and not os.path.isdir(self.dir):
            raise NotADirectoryError(f"{self.what} {self.dir} exists and is not a folder")
        try:
            os.makedirs(self.dir, exist_ok=True)
        except OSError as e:
            raise type(e)(e.errno, f"cannot create the {self.what} {self.dir}: {e.strerror}") from None
        token = uuid.uuid4().hex
        info = {'pid': os.getpid(), 'host': socket.gethostname(), 'command': ' '.join(sys.argv) or sys.executable,
                'started': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC'),
                'what': self.what, 'proc_start': _proc_start(os.getpid()), 'token': token}
        for _ in range(5):
            if self._create(info):
                self._token = token
                return self
            holder = self._read()
            if holder is None:
                continue  # it vanished between our attempt and the read: try again
            if not self._stale(holder):
                raise LockHeld(self._held_message(holder), holder, self.path)
            if self._break(holder):
                self.broken = holder
        raise LockHeld(f"could not take the lock {self.path} of {self.what} {self.dir}: other runs keep "
                       f"taking it", self._read() or {}, self.path)

    def release(self) -> None:
        if self._token is None:
            return
        holder = self._read()
        if holder is not None and holder.get('token') == self._token:  # never remove a lock someone else took
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)
        self._token = None

    @property
    def held(self) -> bool:
        return self._token is not None

    def __enter__(self) -> 'DirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # ------------------------------------------------------------ internals
    def _create(self, info: dict) -> bool:
        """Atomically create the lock file with its full content; False when it already exists."""
        tmp = f'{self.path}.{info["token"]}.tmp'
        try:
            with open(tmp, 'w', encoding='utf-8') as f:
                json.dump(info, f)
        except OSError as e:
            raise type(e)(e.errno, f"cannot write the lock file {self.path} of {self.what} {self.dir}: "
                                   f"{e.strerror}") from None
        try:
            os.link(tmp, self.path)  # atomic, fails when the lock exists
            return True
        except FileExistsError:
            return False
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise type(e)(e.errno, f"cannot create the lock file {self.path}: {e.strerror}") from None
            # a filesystem without hard links: exclusive create (a reader may briefly see it empty)
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                json.dump(info, f)
            return True
        finally:
            with contextlib.suppress(OSError):
                os.remove(tmp)

    def _read(self) -> dict | None:
        """The holder's record; None when there is no lock file; {'unreadable': ...} when it is not ours to parse."""
        try:
            with open(self.path, encoding='utf-8') as f:
                text = f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            return {'unreadable': e.strerror}
        try:
            holder = json.loads(text)
            if not isinstance(holder, dict):
                raise ValueError('not an object')
            return holder
        except ValueError:
            return {'unreadable': f'not a lock file written by microemo_jax ({len(text)} bytes)'}

    def _stale(self, holder: dict) -> bool:
        if 'unreadable' in holder or holder.get('host') != socket.gethostname():
            return False  # cannot check: refuse rather than risk two runs
        return not pid_alive(holder.get('pid'), holder.get('proc_start'))

    def _break(self, holder: dict) -> bool:
        """Remove the stale lock ``holder`` (under a kernel lock, after checking the file still is that one)."""
        import fcntl  # optional: POSIX only
        guard = self.path + '.guard'
        with open(guard, 'a') as g:
            fcntl.flock(g, fcntl.LOCK_EX)
            try:
                now = self._read()
                if now is None or now.get('token') != holder.get('token') or not self._stale(now):
                    return False
                os.remove(self.path)
                return True
            finally:
                fcntl.flock(g, fcntl.LOCK_UN)

    def _held_message(self, holder: dict) -> str:
        if 'unreadable' in holder:
            return (f"{self.what} {self.dir} is locked by {self.path}, which cannot be read "
                    f"({holder['unreadable']}); if no other run uses this folder, delete that file")
        where = '' if holder.get('host') == socket.gethostname() else (
            f"; it runs on another host, which cannot be checked from here: if that run is gone, delete {self.path}")
        return f"{self.what} {self.dir} is in use by {describe(holder)}{where}"
