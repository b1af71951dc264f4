"""Clean stops on preemption: the loop asks ``guard.should_stop(step)`` and, when True, saves and exits.

A notice comes as SIGTERM (SLURM ``--signal``, Kubernetes termination, spot VMs). In a single process
the guard installs a SIGTERM handler that sets a flag. When ``jax.distributed`` is initialised the guard
does NOT install a handler (it would replace the one of JAX's preemption service): it asks
``multihost_utils.reached_preemption_sync_point(step)``, which is True on every host at the same step
after any host got the notice, so all hosts save together. Saving is the loop's business
(``training/checkpointing``); the guard only says when.
"""
from __future__ import annotations

import logging
import signal
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils

log = logging.getLogger(__name__)

class PreemptionGuard:
    """``guard.should_stop(step)``: True when the loop should save a checkpoint and exit.

    Call it at every step on every process (the multi-host sync point counts steps).
    """

    def __init__(self, signals=(signal.SIGTERM,)):
        self._stop = threading.Event()
        self._previous = {}
        multi = jax.distributed.is_initialized() and jax.process_count() > 1
        # With JAX's preemption service the hosts agree on a step by themselves; without it (service
        # disabled) each host keeps its own flag and the hosts OR them at every check (one tiny allgather).
        self.distributed = multi and bool(jax.config.jax_enable_preemption_service)
        self._gather = multi and not self.distributed
        if not self.distributed and threading.current_thread() is threading.main_thread():
            for sig in signals:
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        log.warning("received signal %d: will save a checkpoint and stop", signum)
        self._stop.set()
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)

    def request_stop(self) -> None:
        """Ask the loop to stop as a signal would (tests, custom notices)."""
        self._stop.set()

    def should_stop(self, step: int) -> bool:
        if self.distributed:
            return bool(multihost_utils.reached_preemption_sync_point(step))
        if self._gather:
            return bool(np.any(multihost_utils.process_allgather(np.array(self._stop.is_set()))))
        return self._stop.is_set()

    def close(self) -> None:
        """Put back the signal handlers that were there before."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
