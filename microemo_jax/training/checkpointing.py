"""Run checkpoints (train state + Grain iterator) in WORKDIR/checkpoints: when, what, and resuming.

A thin wrapper over Orbax's V0 ``CheckpointManager`` (async saves, keep-N) so that the
V1 API can replace it later without touching the loop. Each checkpoint holds the items ``state`` (the
TrainState, restored straight onto the target shardings, also onto a different mesh) and, when given,
``data_iter`` (the Grain iterator's state, one file per process), so a resumed run sees the exact
batches it would have seen.

Resuming (``restore_latest``) takes the newest checkpoint that restores. One that cannot be read (a
truncated or damaged file) is skipped with its reason and, once an older one restored, moved aside to
``WORKDIR/checkpoints-corrupt/STEP`` (kept, never deleted). One that reads but does not fit the model
(the config changed) is not damage: that stops the run with a ``CheckpointMismatch`` naming what differs,
and nothing is moved. If no checkpoint restores, nothing is moved either and the error lists each reason.

Every checkpoint is stamped with ``checksums.json`` (the SHA-256 of each of its files but
``_CHECKPOINT_METADATA``, which Orbax rewrites at commit; ``microemo_jax/checksums.py``) when Orbax
finalises it, before it is renamed into place, so no finished step lacks one. ``restore_latest``
verifies a step's files before restoring it and treats a mismatch (a flipped bit that Orbax would read
without complaint) as damage: skipped, said and moved aside like a truncated file. A step without
``checksums.json`` (written before checksums were kept) is restored with a one-line warning.

Only good states are written: ``save(..., finite=False)`` refuses (the step that produced the state had
a non-finite loss), so the latest checkpoint is always the last good one. All processes must call
``save``/``restore`` (Orbax coordinates the hosts).

When to save is decided here and by the loop, never by Orbax: ``due(step)`` is the ``checkpoint_every``
interval, and the loop adds the final step and stops (``training/preemption``, ``max_steps_per_run``)
with ``force=True``. The manager is only asked when a save is wanted and always saves (no Orbax save
policy is consulted), so a resumed run finds exactly the steps the loop chose.
"""
from __future__ import annotations

import glob
import logging
import os
import shutil

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from microemo_jax import checksums
from microemo_jax.safe_paths import inside
from microemo_jax.training.distributed import barrier, share_from_first
from microemo_jax.training.orbax_reads import is_mismatch, read_quietly, short

log = logging.getLogger(__name__)
# Rewritten by Orbax after the stamp (the commit time goes into it), so not checksummed; the restored state does
# not depend on it (a step whose _CHECKPOINT_METADATA is garbage restores the same arrays).
_REWRITTEN = ('_CHECKPOINT_METADATA',)


def _grain_args(kind: str, data_iter):
    return getattr(grain.checkpoint, kind)(data_iter)


class CheckpointMismatch(ValueError):
    """A run checkpoint reads fine but does not fit the train state built from this config."""


class CheckpointUnreadable(RuntimeError):
    """No checkpoint in the directory could be restored; the message lists each one's reason."""


class Checkpointer:
    """Save/restore the train state and the data iterator under ``workdir/checkpoints``."""

    def __init__(self, workdir: str, *, max_to_keep: int = 3, save_interval_steps: int = 1,
                 async_save: bool = True):
        self.directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
        self.save_interval_steps = save_interval_steps
        # No save policy here: ``save`` decides and calls the manager with force=True, which skips Orbax's
        # policies (interval, preemption, "initial save") and its "not after the latest step" check.
        # Async saves are stamped in Orbax's finalisation (primary host, after every host wrote its files, before
        # the step folder is renamed into place); synchronous ones right after ``save`` returns.
        self.async_save = async_save
        self._pending: int | None = None
        self._checks = 0
        async_options = ocp.AsyncOptions(post_finalization_callback=self._stamp_pending) if async_save else None
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=async_save,
                                               create=True, async_options=async_options)
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=('state', 'data_iter'))

    @classmethod
    def from_config(cls, workdir: str, cfg) -> 'Checkpointer':
        """Interval ``checkpoint_every``, keeping ``train.keep_checkpoints``."""
        return cls(workdir, max_to_keep=cfg.train.keep_checkpoints, save_interval_steps=cfg.checkpoint_every)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def due(self, step: int) -> bool:
        """Whether ``step`` is on the save interval (``checkpoint_every``)."""
        return step % self.save_interval_steps == 0

    def save(self, step: int, state, data_iter=None, *, force: bool = False, finite=True) -> bool:
        """Save at ``step`` if it is ``due`` (or ``force``); returns whether a save started.

        ``finite`` is the step's ``metrics['finite']`` (a bool or a replicated array): a state from a
        non-finite step is never written. Saving a step that is already saved is a no-op.
        """
        if not bool(jax.device_get(finite)):
            log.warning("step %d: not saving a checkpoint, the loss or gradient norm was not finite", step)
            return False
        if step in self.manager.all_steps() or not (force or self.due(step)):
            return False
        items = dict(state=ocp.args.StandardSave(state))
        if data_iter is not None:
            items['data_iter'] = _grain_args('CheckpointSave', data_iter)
        self.manager.wait_until_finished()  # the previous save is stamped before ``_pending`` moves on
        self._pending = step
        started = self.manager.save(step, args=ocp.args.Composite(**items), force=True)
        if started and not self.async_save and jax.process_index() == 0:
            checksums.stamp(os.path.join(self.directory, str(step)), unchecked=_REWRITTEN)
        return started

    def _stamp_pending(self) -> None:
        """Orbax's post-finalisation callback (primary host): stamp the step being committed, in its temporary
        folder (``STEP.orbax-checkpoint-tmp*``) when it has one, else in place (object stores commit in place)."""
        step = self._pending
        try:
            tmp = glob.glob(os.path.join(glob.escape(self.directory), f'{step}.orbax-checkpoint-tmp*'))
            folder = tmp[0] if len(tmp) == 1 else os.path.join(self.directory, str(step))
            checksums.stamp(folder, unchecked=_REWRITTEN)
        except OSError as e:  # never fail the save itself: the step is then restored unverified, with a warning
            log.warning("checkpoint %s: could not write checksums.json (%s)", step, e)

    def integrity(self, step: int) -> str | None:
        """None when checkpoint ``step``'s files match its checksums; 'unstamped' when it has none; else why not.

        Process 0 reads the files; every process gets its verdict (collective)."""
        verdict = None
        if jax.process_index() == 0:
            try:
                verdict = None if checksums.verify(os.path.join(self.directory, str(step))) else 'unstamped'
            except checksums.ChecksumError as e:
                verdict = f"checksum mismatch: {e.file} {e.why}"
        self._checks += 1
        return share_from_first(f'microemo: checkpoint {step} integrity {self._checks}', verdict) or None

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
            problem = self.integrity(step)
            if problem == 'unstamped':
                report(f"checkpoint at step {step} has no {checksums.MANIFEST} (written before checksums were kept): "
                       f"restoring it without verifying its files")
            elif problem is not None:
                failed.append((step, problem))
                report(f"checkpoint at step {step} could not be restored ({problem}); trying an older one")
                continue
            state, error = read_quietly(self.restore, step, abstract_state, data_iter)
            error = _agree(error)
            if error is not None and is_mismatch(error):
                raise CheckpointMismatch(
                    f"checkpoint {os.path.join(self.directory, str(step))} does not fit the train state built from "
                    f"this config (did model.*, stage or the optimiser change since it was written? resume with the "
                    f"same config, or use another --workdir): {short(error, 600)}") from None
            if error is not None:
                failed.append((step, short(error)))
                report(f"checkpoint at step {step} could not be restored ({short(error)}); trying an older one")
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
        workdir = os.path.dirname(self.directory)
        root = inside(workdir, 'checkpoints-corrupt')   # a link there leading out is refused (safe_paths)
        target = inside(workdir, 'checkpoints-corrupt', str(step))
        n = 1
        while os.path.lexists(target):  # an earlier run moved this step aside already: keep both
            target = inside(workdir, 'checkpoints-corrupt', f'{step}.{n}')
            n += 1
        if jax.process_index() == 0:
            os.makedirs(root, exist_ok=True)
            shutil.move(source, target)
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


def saved_steps(workdir: str) -> list[int]:
    """The finished checkpoint steps in ``workdir/checkpoints``, from the listing alone (no Orbax manager, no
    collective): what a run can tell before its processes meet."""
    try:
        names = os.listdir(os.path.join(os.path.abspath(workdir), 'checkpoints'))
    except OSError:
        return []
    return sorted(int(n) for n in names if n.isdigit())


def _agree(error: BaseException | None) -> BaseException | None:
    """With several processes, a restore counts as failed when it failed on any of them."""
    if jax.process_count() == 1:
        return error
    failed = np.asarray(multihost_utils.process_allgather(np.array(error is not None)))
    if error is None and failed.any():
        return RuntimeError('the restore failed on another process (see its log)')
    return error
