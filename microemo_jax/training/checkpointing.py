"""Run checkpoints (train state + Grain iterator) in WORKDIR/checkpoints, and clean stops on preemption.

A thin wrapper over Orbax's V0 ``CheckpointManager`` (async saves, keep-N, save interval) so that the
V1 API can replace it later without touching the loop. Each checkpoint holds the items ``state`` (the
TrainState, restored straight onto the target shardings, also onto a different mesh) and, when given,
``data_iter`` (the Grain iterator's state, one file per process), so a resumed run sees the exact
batches it would have seen.

Only good states are written: ``save(..., finite=False)`` refuses (the step that produced the state had
a non-finite loss), so the latest checkpoint is always the last good one. All processes must call
``save``/``restore`` (Orbax coordinates the hosts).

``PreemptionGuard``: on SIGTERM (SLURM ``--signal``, Kubernetes termination, spot VMs) the loop should
save and exit. In a single process the guard installs a SIGTERM handler that sets a flag. When
``jax.distributed`` is initialised the guard does NOT install a handler (it would replace the one of
JAX's preemption service): it asks ``multihost_utils.reached_preemption_sync_point(step)``, which is
True on every host at the same step after any host got the notice, so all hosts save together.
"""
from __future__ import annotations

import logging
import os
import signal
import threading

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


def _grain_args(kind: str, data_iter):
    import grain  # only needed with a data iterator
    return getattr(grain.checkpoint, kind)(data_iter)


class Checkpointer:
    """Save/restore the train state and the data iterator under ``workdir/checkpoints``."""

    def __init__(self, workdir: str, *, max_to_keep: int = 3, save_interval_steps: int = 1,
                 async_save: bool = True):
        self.directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
        # Every save_interval_steps, and at JAX's preemption sync point (multi-host); unlike Orbax's default
        # there is no "initial save" of a fresh run's first step (MaxText's choice too).
        policies = ocp.checkpoint_managers
        policy = policies.AnySavePolicy([policies.FixedIntervalPolicy(save_interval_steps),
                                         policies.PreemptionCheckpointingPolicy()])
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, save_decision_policy=policy,
                                               enable_async_checkpointing=async_save, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=('state', 'data_iter'))

    @classmethod
    def from_config(cls, workdir: str, cfg) -> 'Checkpointer':
        """Interval ``checkpoint_every``, keeping ``train.keep_checkpoints``."""
        return cls(workdir, max_to_keep=cfg.train.keep_checkpoints, save_interval_steps=cfg.checkpoint_every)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state, data_iter=None, *, force: bool = False, finite=True) -> bool:
        """Save at ``step`` if it is on the interval (or ``force``); returns whether a save started.

        ``finite`` is the step's ``metrics['finite']`` (a bool or a replicated array): a state from a
        non-finite step is never written. Saving a step that is already saved is a no-op.
        """
        if not bool(jax.device_get(finite)):
            log.warning("step %d: not saving a checkpoint, the loss or gradient norm was not finite", step)
            return False
        if step in self.manager.all_steps():
            return False
        items = dict(state=ocp.args.StandardSave(state))
        if data_iter is not None:
            items['data_iter'] = _grain_args('CheckpointSave', data_iter)
        return self.manager.save(step, args=ocp.args.Composite(**items), force=force)

    def restore(self, step: int | None, abstract_state, data_iter=None):
        """The state saved at ``step`` (default: latest) on the shardings of ``abstract_state``.

        ``abstract_state`` is a tree of ShapeDtypeStructs with ``.sharding`` (``state.abstract_train_state``);
        ``data_iter``, if given, is moved in place to the saved position.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        items = dict(state=ocp.args.StandardRestore(abstract_state))
        if data_iter is not None:
            items['data_iter'] = _grain_args('CheckpointRestore', data_iter)
        restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        return restored['state']

    def wait(self) -> None:
        """Block until async saves are on disk (before reading them, exiting or exporting)."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
            from jax.experimental import multihost_utils
            return bool(multihost_utils.reached_preemption_sync_point(step))
        if self._gather:
            import numpy as np
            from jax.experimental import multihost_utils
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
