"""Starting from a parameter checkpoint: stage 1 -> stage 2, missing LoRA keeps its init, clear mismatches."""
import gc
import os
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from microemo_jax import params as params_lib
from microemo_jax.models.microemo import MicroEmo
from microemo_jax.training import state as state_lib
from microemo_jax.training.state import path_name
from tests.support.training import config
from tests.support.unraisable import from_orbax


def _named(*trees):
    return {path_name(p): np.asarray(v.get_value()) for t in trees for p, v in nnx.to_flat_state(t)}


def _start_from(cfg, mesh, folder):
    """How `train` starts from init.params: the folder restored by name onto the model's shardings."""
    abstract = state_lib.abstract_train_state(cfg, mesh)
    restored = params_lib.load_params(folder, state_lib.model_params(abstract))
    return state_lib.init_train_state(cfg, mesh, abstract=abstract, restored=restored)


def test_stage_two_starts_from_stage_one_params_and_fresh_lora(setup, tmp_path):
    exported = str(tmp_path / 'stage1')
    params_lib.export_params(exported, setup.cfg, setup.graphdef, setup.state, setup.frozen)
    stage1 = _named(setup.state.params, setup.frozen)

    cfg2 = config('stage=2')
    graphdef, state, frozen = _start_from(cfg2, setup.mesh, exported)
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
    params_lib.export_params(str(tmp_path / 'stage2'), cfg2, graphdef, state, frozen)
    with pytest.raises(ValueError, match=r'holds \d+ parameters this model lacks.*lora'):
        params_lib.load_params(str(tmp_path / 'stage2'), state_lib.model_params(setup.abstract))


def test_shape_mismatch_is_reported_by_name_before_compiling(setup, tmp_path):
    exported = str(tmp_path / 'params')
    params_lib.export_params(exported, setup.cfg, setup.graphdef, setup.state, setup.frozen)
    other = config('model.video_qformer.max_frames=8')
    with pytest.raises(ValueError, match=r"video_qformer/frame_pos: checkpoint \(16, 64\) vs model \(8, 64\)"):
        _start_from(other, setup.mesh, exported)
    with pytest.raises(FileNotFoundError, match='not a microemo-jax parameter checkpoint'):
        _start_from(other, setup.mesh, str(tmp_path / 'nothing'))


def test_a_damaged_init_checkpoint_gives_one_error_naming_the_folder(setup, tmp_path, capfd, monkeypatch):
    from microemo_jax.params import ParamsUnreadable, restore_params
    exported = tmp_path / 'params'
    params_lib.export_params(str(exported), setup.cfg, setup.graphdef, setup.state, setup.frozen)
    files = [os.path.join(d, f) for d, _, fs in os.walk(exported / 'params') for f in fs]
    victim = max(files, key=os.path.getsize)
    with open(victim, 'r+b') as f:
        f.truncate(os.path.getsize(victim) // 2)
    gc.collect()  # earlier tests' garbage (e.g. a web server's closed event loop) is not this test's business
    capfd.readouterr()
    unraisable = []  # Orbax's abandoned read tasks report here at garbage collection ("Exception ignored in")
    monkeypatch.setattr(sys, 'unraisablehook', unraisable.append)
    with pytest.raises(ParamsUnreadable, match=rf'{exported}: the parameter checkpoint cannot be read.*truncated'):
        params_lib.load_params(str(exported), state_lib.model_params(setup.abstract))
    model = nnx.eval_shape(lambda: MicroEmo(setup.cfg.model, rngs=nnx.Rngs(0)))
    with pytest.raises(ParamsUnreadable, match=rf'{exported}: the parameter checkpoint cannot be read'):
        restore_params(str(exported), model)                          # into a built model
    gc.collect()
    err = capfd.readouterr().err
    assert 'Traceback' not in err and not from_orbax(unraisable), (err[:3000], from_orbax(unraisable)[:2])
