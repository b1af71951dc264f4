"""Run checkpoints: exact resume onto the abstract state, data-iterator state, no bad states, SIGTERM."""
import gc
import os
import signal
import sys

import grain
import jax
import numpy as np
import pytest

from microemo_jax.training.checkpointing import Checkpointer
from microemo_jax.training.preemption import PreemptionGuard
from tests.support.training import copy_tree
from tests.support.unraisable import from_orbax


def _assert_same(a_tree, b_tree):
    a_leaves, b_leaves = jax.tree.leaves(a_tree), jax.tree.leaves(b_tree)
    assert jax.tree.structure(a_tree) == jax.tree.structure(b_tree)
    for a, b in zip(a_leaves, b_leaves):
        assert a.sharding == b.sharding and a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_save_restore_resumes_exactly(setup, tmp_path):
    state, _ = setup.train_step(copy_tree(setup.state), setup.frozen, setup.batch)
    data = grain.MapDataset.range(20).to_iter_dataset()
    it = iter(data)
    next(it), next(it)
    with Checkpointer(str(tmp_path), max_to_keep=2, save_interval_steps=1) as ckpt:
        assert ckpt.latest_step() is None
        assert ckpt.save(1, state, it)
        ckpt.wait()
        expected_next = next(it)
        assert ckpt.latest_step() == 1
        it2 = iter(data)
        restored = ckpt.restore(None, setup.abstract.state, it2)
    _assert_same(restored, state)
    assert next(it2) == expected_next                                   # the data position is restored too
    _, m_a = setup.train_step(copy_tree(state), setup.frozen, setup.batch)
    _, m_b = setup.train_step(restored, setup.frozen, setup.batch)
    assert float(m_a['loss']) == float(m_b['loss'])                     # identical next step
    assert float(m_a['grad_norm']) == float(m_b['grad_norm'])


def test_interval_keep_n_and_non_finite_states_are_not_saved(setup, tmp_path):
    state = setup.state
    with Checkpointer(str(tmp_path), max_to_keep=2, save_interval_steps=2, async_save=False) as ckpt:
        assert not ckpt.save(1, state)                                  # off the interval
        assert ckpt.save(2, state)
        assert not ckpt.save(2, state, force=True)                      # already saved: no-op
        assert ckpt.save(3, state, force=True)                          # e.g. the final or a preemption save
        assert not ckpt.save(4, state, finite=np.array(False))          # a non-finite step's state
        assert ckpt.save(6, state)
        ckpt.wait()
        assert ckpt.all_steps() == [3, 6] and ckpt.latest_step() == 6
    assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['3', '6']


def test_restore_without_checkpoint_says_so(setup, tmp_path):
    with Checkpointer(str(tmp_path)) as ckpt:
        with pytest.raises(FileNotFoundError, match='no checkpoint'):
            ckpt.restore(None, setup.abstract.state)


def test_preemption_guard_turns_sigterm_into_a_stop_request():
    before = signal.getsignal(signal.SIGTERM)
    with PreemptionGuard() as guard:
        assert not guard.should_stop(0)
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard.should_stop(1)
    assert signal.getsignal(signal.SIGTERM) == before


def _truncate_largest(folder):
    """Cut the largest file under ``folder`` in half (a copy interrupted mid-way, a full disk)."""
    files = [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs]
    victim = max(files, key=os.path.getsize)
    with open(victim, 'r+b') as f:
        f.truncate(os.path.getsize(victim) // 2)
    return victim


def test_a_damaged_latest_checkpoint_is_skipped_said_and_moved_aside(setup, tmp_path, capfd, monkeypatch):
    from microemo_jax.training.checkpointing import CheckpointMismatch, CheckpointUnreadable
    later = setup.state.replace(step=setup.state.step + 7)
    with Checkpointer(str(tmp_path), max_to_keep=3, async_save=False) as ckpt:
        ckpt.save(1, setup.state)
        ckpt.save(2, later)
    _truncate_largest(tmp_path / 'checkpoints' / '2')
    capfd.readouterr()
    unraisable = []  # Orbax's abandoned read tasks report here at garbage collection ("Exception ignored in")
    monkeypatch.setattr(sys, 'unraisablehook', unraisable.append)
    lines = []
    with Checkpointer(str(tmp_path), max_to_keep=3, async_save=False) as ckpt:  # a new run on the workdir
        state, step, skipped = ckpt.restore_latest(setup.abstract.state, report=lines.append)
        assert step == 1 and int(state.step) == int(setup.state.step)
        _assert_same(state, setup.state)
        [(bad, why, moved)] = skipped
        assert bad == 2 and moved == str(tmp_path / 'checkpoints-corrupt' / '2') and why
        assert any('skipped the checkpoint at step 2' in line and moved in line and 'resuming from step 1' in line
                   for line in lines), lines
        assert ckpt.all_steps() == [1] and os.path.isdir(moved)              # kept aside, not deleted
        assert ckpt.save(2, later)                                            # the step can be redone and saved
    gc.collect()
    err = capfd.readouterr().err
    assert 'Traceback' not in err and not from_orbax(unraisable), (err[:3000], from_orbax(unraisable)[:2])  # no wall of tracebacks

    # a checkpoint that reads but does not fit (the config changed) is not damage: stop, move nothing
    other = setup.abstract.state.replace(step=jax.ShapeDtypeStruct((2,), np.int32,
                                                                    sharding=setup.abstract.state.step.sharding))
    with Checkpointer(str(tmp_path)) as ckpt:
        with pytest.raises(CheckpointMismatch, match=r'checkpoints/2 does not fit the train state.*stored shape'):
            ckpt.restore_latest(other, report=lines.append)
        assert ckpt.all_steps() == [1, 2]

    # when none restores, nothing is moved and every reason is listed
    _truncate_largest(tmp_path / 'checkpoints' / '1')
    _truncate_largest(tmp_path / 'checkpoints' / '2')
    with Checkpointer(str(tmp_path)) as ckpt:
        with pytest.raises(CheckpointUnreadable, match=r'(?s)nothing was moved.*step 2: .*step 1: '):
            ckpt.restore_latest(setup.abstract.state, report=lines.append)
        assert ckpt.all_steps() == [1, 2]


def _flip_bits(folder, offset_fraction=0.5):
    """Flip one bit in the middle of the largest file under ``folder``: a damaged disk or copy that keeps the size."""
    files = [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs]
    victim = max(files, key=os.path.getsize)
    with open(victim, 'r+b') as f:
        f.seek(int(os.path.getsize(victim) * offset_fraction))
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x10]))
    return victim


@pytest.mark.parametrize('async_save', [False, True])
def test_a_bit_flipped_latest_checkpoint_is_caught_by_its_checksums_and_skipped(setup, tmp_path, async_save):
    """Orbax reads a flipped bit without complaint; the checksums written at save catch it at restore."""
    later = setup.state.replace(step=setup.state.step + 7)
    with Checkpointer(str(tmp_path), max_to_keep=3, async_save=async_save) as ckpt:
        ckpt.save(1, setup.state)
        ckpt.save(2, later)
    for step in ('1', '2'):                                                # stamped when written, async or not
        assert os.path.isfile(tmp_path / 'checkpoints' / step / 'checksums.json')
    victim = _flip_bits(tmp_path / 'checkpoints' / '2')
    lines = []
    with Checkpointer(str(tmp_path), max_to_keep=3, async_save=False) as ckpt:
        state, step, skipped = ckpt.restore_latest(setup.abstract.state, report=lines.append)
    assert step == 1, lines
    _assert_same(state, setup.state)
    [(bad, why, moved)] = skipped
    assert bad == 2 and 'checksum' in why and os.path.basename(victim) in why
    assert os.path.isdir(moved)


def test_a_checkpoint_without_checksums_restores_with_a_warning(setup, tmp_path):
    with Checkpointer(str(tmp_path), max_to_keep=3, async_save=False) as ckpt:
        ckpt.save(1, setup.state)
    os.remove(tmp_path / 'checkpoints' / '1' / 'checksums.json')           # as written before checksums were kept
    lines = []
    with Checkpointer(str(tmp_path), max_to_keep=3, async_save=False) as ckpt:
        _, step, skipped = ckpt.restore_latest(setup.abstract.state, report=lines.append)
    assert step == 1 and not skipped
    assert len(lines) == 1 and 'no checksums.json' in lines[0] and 'without verifying' in lines[0]
