"""Starting from a parameter checkpoint: stage 1 -> stage 2, missing LoRA keeps its init, clear mismatches."""
import gc
import os
import sys

import jax
import numpy as np
import pytest
from tests.support.unraisable import from_orbax
from flax import nnx

from microemo_jax.models.microemo import MicroEmo
from microemo_jax.training import state as state_lib
from microemo_jax.training.state import path_name

from tests.support.training import config


def _named(*trees):
    return {path_name(p): np.asarray(v.get_value()) for t in trees for p, v in nnx.to_flat_state(t)}


def test_stage_two_starts_from_stage_one_params_and_fresh_lora(setup, tmp_path):
    exported = str(tmp_path / 'stage1')
    state_lib.export_params(exported, setup.cfg, setup.graphdef, setup.state, setup.frozen)
    stage1 = _named(setup.state.params, setup.frozen)

    cfg2 = config('stage=2')
    graphdef, state, frozen = state_lib.init_train_state(cfg2, setup.mesh, params_path=exported)
    params, frozen_named = _named(state.params), _named(frozen)
    lora = {n for n in params if '/lora/' in n}
    assert lora and set(params) - lora == {n for n in stage1 if n in params}  # stage 2 trains stage 1's + LoRA
    for name, value in {**params, **frozen_named}.items():
        if name not in lora:
            np.testing.assert_array_equal(value, stage1[name], err_msg=name)
    # adapters absent from the checkpoint keep their fresh init (B = 0, A random as without a checkpoint)
    fresh = MicroEmo(cfg2.model, use_lora=True,
                     rngs=nnx.Rngs(params=jax.random.fold_in(jax.random.key(cfg2.seed), 0)))
    fresh = _named(nnx.state(fresh, nnx.LoRAParam))
    for name in lora:
        np.testing.assert_allclose(params[name], fresh[name], rtol=0, atol=1e-6, err_msg=name)
        if name.endswith('/b'):
            assert not params[name].any()
    for leaf, abstract in zip(jax.tree.leaves(state), jax.tree.leaves(state_lib.abstract_train_state(cfg2, setup.mesh).state)):
        assert leaf.sharding == abstract.sharding

    # the other way round (a stage-2 checkpoint into a stage-1 model) would drop the adapters: refused
    state_lib.export_params(str(tmp_path / 'stage2'), cfg2, graphdef, state, frozen)
    with pytest.raises(ValueError, match=r'holds \d+ parameters this model lacks.*lora'):
        state_lib.load_params(str(tmp_path / 'stage2'), setup.abstract)


def test_shape_mismatch_is_reported_by_name_before_compiling(setup, tmp_path):
    exported = str(tmp_path / 'params')
    state_lib.export_params(exported, setup.cfg, setup.graphdef, setup.state, setup.frozen)
    other = config('model.video_qformer.max_frames=8')
    with pytest.raises(ValueError, match=r"video_qformer/frame_pos: checkpoint \(16, 64\) vs model \(8, 64\)"):
        state_lib.init_train_state(other, setup.mesh, params_path=exported)
    with pytest.raises(FileNotFoundError, match='not a microemo-jax parameter checkpoint'):
        state_lib.init_train_state(other, setup.mesh, params_path=str(tmp_path / 'nothing'))


def test_a_damaged_init_checkpoint_gives_one_error_naming_the_folder(setup, tmp_path, capfd, monkeypatch):
    from microemo_jax.checkpoint import ParamsUnreadable, restore_params
    exported = tmp_path / 'params'
    state_lib.export_params(str(exported), setup.cfg, setup.graphdef, setup.state, setup.frozen)
    files = [os.path.join(d, f) for d, _, fs in os.walk(exported / 'params') for f in fs]
    victim = max(files, key=os.path.getsize)
    with open(victim, 'r+b') as f:
        f.truncate(os.path.getsize(victim) // 2)
    gc.collect()  # earlier tests' garbage (e.g. a web server's closed event loop) is not this test's business
    capfd.readouterr()
    unraisable = []  # Orbax's abandoned read tasks report here at garbage collection ("Exception ignored in")
    monkeypatch.setattr(sys, 'unraisablehook', unraisable.append)
    with pytest.raises(ParamsUnreadable, match=rf'{exported}: the parameter checkpoint cannot be read.*truncated'):
        state_lib.load_params(str(exported), setup.abstract)
    model = nnx.eval_shape(lambda: MicroEmo(setup.cfg.model, rngs=nnx.Rngs(0)))
    with pytest.raises(ParamsUnreadable, match=rf'{exported}: the parameter checkpoint cannot be read'):
        restore_params(str(exported), model)                          # evaluate / predict path
    gc.collect()
    err = capfd.readouterr().err
    assert 'Traceback' not in err and not from_orbax(unraisable), (err[:3000], from_orbax(unraisable)[:2])
