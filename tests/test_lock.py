"""DirLock: one live holder per folder, named in the refusal; stale locks (dead or reused pid) are broken
safely, also when several runs race for them; a lock from another host or an unreadable one is refused."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from microemo_jax.lock import LOCK_NAME, DirLock, LockHeld, _proc_start, pid_alive

HOLD = """
import sys, time
from microemo_jax.lock import DirLock
with DirLock(sys.argv[1], 'test folder'):
    print('held', flush=True)
    time.sleep(float(sys.argv[2]))
"""


def write_lock(folder, **fields):
    holder = {'pid': 1, 'host': socket.gethostname(), 'command': 'python -m microemo_jax.prepare',
              'started': '2026-01-01 00:00:00 UTC', 'what': 'test folder', 'proc_start': None, 'token': 'old'}
    holder.update(fields)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, LOCK_NAME), 'w') as f:
        json.dump(holder, f)
    return holder


def dead_pid():
    p = subprocess.Popen([sys.executable, '-c', 'pass'])
    p.wait()
    return p.pid


def test_held_for_the_block_and_released_after_it(tmp_path):
    folder = tmp_path / 'out'
    with DirLock(str(folder), 'prepare output folder') as lock:
        assert lock.held
        holder = json.loads((folder / LOCK_NAME).read_text())
        assert holder['pid'] == os.getpid() and holder['host'] == socket.gethostname()
        assert holder['command'] and holder['started'].endswith('UTC')
    assert not (folder / LOCK_NAME).exists()
    with pytest.raises(ZeroDivisionError):       # released on an exception too
        with DirLock(str(folder), 'x'):
            1 / 0  # noqa: B018  (the exception is the point)
    assert not (folder / LOCK_NAME).exists()
    with DirLock(str(folder), 'x'):               # and can be taken again
        pass


def test_a_second_holder_is_refused_with_the_holder_named(tmp_path):
    folder = str(tmp_path)
    with DirLock(folder, 'prepare output folder'):
        with pytest.raises(LockHeld) as e:
            DirLock(folder, 'prepare output folder').acquire()
    msg = str(e.value)
    assert f'pid {os.getpid()}' in msg and socket.gethostname() in msg and 'started' in msg
    assert 'command:' in msg and 'prepare output folder' in msg and folder in msg
    assert e.value.holder['pid'] == os.getpid()


def test_another_process_holds_it_until_it_is_gone(tmp_path):
    folder = str(tmp_path)
    p = subprocess.Popen([sys.executable, '-c', HOLD, folder, '60'], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == 'held'
        with pytest.raises(LockHeld, match=f'pid {p.pid} '):
            DirLock(folder, 'test folder').acquire()
        p.kill()  # killed: it never released its lock
        p.wait()
        assert os.path.exists(os.path.join(folder, LOCK_NAME))
        with DirLock(folder, 'test folder') as lock:
            assert lock.broken['pid'] == p.pid
    finally:
        p.kill()
        p.wait()


def test_a_stale_lock_is_broken(tmp_path):
    write_lock(tmp_path, pid=dead_pid())
    with DirLock(str(tmp_path)) as lock:
        assert lock.broken is not None
        assert json.loads((tmp_path / LOCK_NAME).read_text())['pid'] == os.getpid()


def test_a_reused_pid_is_not_the_holder(tmp_path):
    # the pid is alive (ours) but the process with that pid started at another time: its holder is gone
    write_lock(tmp_path, pid=os.getpid(), proc_start='1')
    if _proc_start(os.getpid()) is None:
        pytest.skip('no /proc')
    assert not pid_alive(os.getpid(), '1') and pid_alive(os.getpid(), _proc_start(os.getpid()))
    with DirLock(str(tmp_path)) as lock:
        assert lock.broken['proc_start'] == '1'


def test_a_lock_from_another_host_or_unreadable_is_refused(tmp_path):
    write_lock(tmp_path / 'a', host='elsewhere-node-7', pid=dead_pid())
    with pytest.raises(LockHeld, match='elsewhere-node-7.*another host.*delete'):
        DirLock(str(tmp_path / 'a')).acquire()
    os.makedirs(tmp_path / 'b')
    (tmp_path / 'b' / LOCK_NAME).write_bytes(b'\x00\x01garbage')
    with pytest.raises(LockHeld, match='cannot be read'):
        DirLock(str(tmp_path / 'b')).acquire()


def test_a_file_or_a_read_only_folder(tmp_path):
    (tmp_path / 'f').write_text('x')
    with pytest.raises(NotADirectoryError, match='not a folder'):
        DirLock(str(tmp_path / 'f')).acquire()
    ro = tmp_path / 'ro'
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip('running as a user that can write anywhere')
        with pytest.raises(PermissionError, match='lock'):
            DirLock(str(ro)).acquire()
    finally:
        ro.chmod(0o755)


RACE = """
import sys, time, os
from microemo_jax.lock import DirLock, LockHeld
folder, log, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
try:
    with DirLock(folder, 'race'):
        with open(log, 'a') as f:
            f.write(f'in {os.getpid()} {time.time()}\\n')
        time.sleep(0.3)
        with open(log, 'a') as f:
            f.write(f'out {os.getpid()} {time.time()}\\n')
except LockHeld:
    pass
"""


def test_racing_runs_never_both_take_a_stale_lock(tmp_path):
    folder, log = tmp_path / 'out', tmp_path / 'log'
    write_lock(folder, pid=dead_pid())
    start = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, '-c', RACE, str(folder), str(log), str(start)]) for _ in range(6)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    events = [line.split() for line in log.read_text().splitlines()]
    assert events and events[0][0] == 'in'
    depth = 0
    for kind, _, _ in events:  # never two holders at once
        depth += 1 if kind == 'in' else -1
        assert depth in (0, 1)
