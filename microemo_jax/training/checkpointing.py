"""Run checkpoints (train state + Grain iterator) in WORKDIR/checkpoints, and clean stops on preemption.

A thin wrapper over Orbax's V0 ``CheckpointManager`` (async saves, keep-N, save interval) so that the
V1 API can replace it later without touching the loop. Each checkpoint holds the items ``state`` (the
TrainState, restored straight onto the target shardings, also onto a different mesh) and, when given,
``data_iter`` (the Grain iterator's state, one file per process), so a resumed run sees the exact
batches it would have seen.

Resuming (``restore_latest``) takes the newest checkpoint that restores. One that cannot be read (a
truncated or damaged file) is skipped with its reason and, once an older one restored, moved aside to
``WORKDIR/checkpoints-corrupt/STEP`` (kept, never deleted). One that reads but does not fit the model
(the config changed) is not damage: that stops the run with a ``CheckpointMismatch`` naming what differs,
and nothing is moved. If no checkpoint restores, nothing is moved either and the error lists each reason.

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
import shutil
import signal
import threading

import jax
import orbax.checkpoint as ocp

from microemo_jax.checkpoint import is_mismatch, read_quietly

log = logging.getLogger(__name__)


def _grain_args(kind: str, data_iter):
    import grain  # only needed with a data iterator
    return getattr(grain.checkpoint, kind)(data_iter)


class CheckpointMismatch(ValueError):
    """A run checkpoint reads fine but does not fit the train state built from this config."""


class CheckpointUnreadable(RuntimeError):
    """No checkpoint in the directory could be restored; the message lists each one's reason."""


def _short(e: BaseException, limit: int = 300) -> str:
    text = ' '.join(str(e).split())
    return text if len(text) <= limit else text[:limit] + ' ...'


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

    def restore_latest(self, abstract_state, data_iter=None, *, report=print):
        """``(state, step, skipped)`` from the newest checkpoint that restores; ``(None, None, [])`` when there is none.

        ``skipped``: ``[(step, reason, moved_to)]`` for newer checkpoints that could not be read; they are
        moved to ``WORKDIR/checkpoints-corrupt/STEP`` once an older one restored (``report`` is told each).
        Raises ``CheckpointMismatch`` when a checkpoint reads but does not fit ``abstract_state`` (the config
        changed; nothing is moved) and ``CheckpointUnreadable`` when none restores (nothing is moved).
        """
        failed = []
        for step in sorted(self.all_steps(), reverse=True):
            state, error = read_quietly(self.restore, step, abstract_state, data_iter)
            error = _agree(error)
            if error is not None and is_mismatch(error):
                raise CheckpointMismatch(
                    f"checkpoint {os.path.join(self.directory, str(step))} does not fit the train state built from "
                    f"this config (did model.*, stage or the optimiser change since it was written? resume with the "
                    f"same config, or use another --workdir): {_short(error, 600)}") from None
            if error is not None:
                failed.append((step, _short(error)))
                report(f"checkpoint at step {step} could not be restored ({_short(error)}); trying an older one")
                continue
            skipped = [(s, why, self.quarantine(s)) for s, why in failed]
            for s, why, moved in skipped:
                report(f"skipped the checkpoint at step {s} ({why}); it was moved to {moved}; "
                       f"resuming from step {step}")
            return state, step, skipped
        if failed:
            raise CheckpointUnreadable(
                f"no checkpoint in {self.directory} could be restored (nothing was moved or deleted):\n  " +
                '\n  '.join(f"step {s}: {why}" for s, why in failed) +
                f"\nmove the damaged step folders out of {self.directory} to start over, or use another --workdir")
        return None, None, []

    def quarantine(self, step: int) -> str:
        """Move checkpoint ``step`` to ``WORKDIR/checkpoints-corrupt/STEP`` (kept, not deleted); returns where."""
        source = os.path.join(self.directory, str(step))
        root = os.path.join(os.path.dirname(self.directory), 'checkpoints-corrupt')
        target = os.path.join(root, str(step))
        n = 1
        while os.path.exists(target):  # an earlier run moved this step aside already: keep both
            target = os.path.join(root, f'{step}.{n}')
            n += 1
        if jax.process_index() == 0:
            os.makedirs(root, exist_ok=True)
            shutil.move(source, target)
        from microemo_jax.training.distributed import barrier
        barrier(f'microemo: checkpoint {step} moved aside')
        self.manager.reload()
        return target

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


def _agree(error: BaseException | None) -> BaseException | None:
    """With several processes, a restore counts as failed when it failed on any of them."""
    if jax.process_count() == 1:
        return error
    import numpy as np
    from jax.experimental import multihost_utils
    failed = np.asarray(multihost_utils.process_allgather(np.array(error is not None)))
    if error is None and failed.any():
        return RuntimeError('the restore failed on another process (see its log)')
    return error


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
