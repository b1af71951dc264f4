"""What a training run holds while it runs: its workdir (one run at a time, ``.lock``) and its data folder
(the demo's made on first use)."""
from __future__ import annotations

import contextlib
import os

import jax
from jax.experimental import multihost_utils

from microemo_jax.demo.first_use import demo_paths, ensure_demo_data
from microemo_jax.lock import DirLock, LockHeld
from microemo_jax.training import distributed


class TrainError(RuntimeError):
    """A run cannot start or must stop; the message says why (and what was kept)."""


def resolve_data_dir(cfg) -> str:
    if cfg.data.dir:
        return os.path.expanduser(cfg.data.dir)
    if cfg.variant not in ('demo', 'demo_qwen3'):  # the demo variants make their data on first use
        raise TrainError("set --config.data.dir to a dataset made by `python -m microemo_jax.prepare`")
    if jax.process_index() == 0:
        path = ensure_demo_data(cfg)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices('demo data prepared')
    return demo_paths(cfg)[1] if jax.process_index() else path


@contextlib.contextmanager
def workdir_lock(workdir: str):
    """Hold ``workdir/.lock`` (``lock.DirLock``) for the run; raises ``LockHeld`` naming the holder.

    With several processes (one run over hosts sharing the workdir) process 0 holds it for all of them
    and tells the others whether it got it.
    """
    lock = DirLock(workdir, 'train workdir') if jax.process_index() == 0 else None
    refused = None
    if lock is not None:
        try:
            lock.acquire()
        except LockHeld as e:
            refused = e
    verdict = distributed.share_from_first('microemo: train workdir lock', str(refused) if refused else 'ok')
    if refused is not None:
        raise refused
    if verdict != 'ok':
        raise TrainError(f"process 0 could not lock the workdir: {verdict}")
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()
