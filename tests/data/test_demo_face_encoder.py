"""The demo's pretrained face encoder: crops from prepare's own face pipeline, action-unit targets it can learn,
and a training run that starts its face ViT from it only where init.params does not say otherwise."""
import numpy as np
import pytest

from microemo_jax.config import load_config
from microemo_jax.demo import face as demo_face, face_encoder
from microemo_jax.runs.face_encoder import write_face_encoder
from tests.support.tiny import tiny_config

SEPARATE = ('model.micro_expression.face_encoder=separate',)


def test_crops_come_from_the_face_pipeline_and_targets_from_the_rig():
    x, y = face_encoder.make_examples(6, 32, seed=1)
    assert x.shape == (6, 3, 32, 32) and x.dtype == np.uint8 and y.shape == (6, len(demo_face.PARAMS))
    assert x.std() > 10                                            # a face, not an empty canvas
    relax = demo_face.PARAMS.index('relax')
    assert np.all((y[:, relax] >= 0) & (y[:, relax] <= 1)) and y.std(0).max() > 0.1


def test_pretraining_reads_action_units_from_the_crops():
    # A few hundred crops are enough to show learning: shuffle the targets against the crops and R^2 falls
    # to about 0 (the guard: crops and targets must come from the same face).
    # (the demo's face ViT: 16 patches of a 64 px crop; the tiny config's 32 px crop has 4)
    cfg = load_config('configs/emer.py:demo')
    _, report = face_encoder.pretrain(cfg.model, examples=300, steps=300, batch_size=32, lr=3e-3, log=lambda s: None)
    assert report['held_out_r2_mean'] > 0.3, report


def test_train_takes_the_face_vit_from_init_face_encoder_unless_init_params_has_it(tmp_path, capsys):
    from microemo_jax.runs.supervised import _with_face_encoder
    from microemo_jax.sharding import make_mesh
    from microemo_jax.training.state import abstract_train_state, model_params
    cfg = tiny_config(*SEPARATE)
    folder = str(tmp_path / 'face')
    write_face_encoder(folder, cfg.model, examples=8, steps=2, log=lambda s: None)
    cfg = tiny_config(*SEPARATE, f'init.face_encoder={folder}')
    wanted = model_params(abstract_train_state(cfg, make_mesh(cfg.mesh)))
    face = sorted(n for n in wanted if n.startswith('face_vit/'))
    start = _with_face_encoder(cfg, wanted, None)
    assert face and sorted(start) == face and all(start[n].shape == wanted[n].shape for n in face)
    from microemo_jax.params import load_params
    saved = load_params(folder, {n: wanted[n] for n in face})
    assert all(np.array_equal(start[n], saved[n]) for n in face)
    # a stage-2 start (init.params holds the face ViT) keeps its own
    own = {n: np.zeros(wanted[n].shape, wanted[n].dtype) for n in wanted}
    assert _with_face_encoder(cfg, wanted, own) is own
    # a model without a separate face ViT says so and loads nothing
    shared = tiny_config(f'init.face_encoder={folder}')
    wanted_shared = model_params(abstract_train_state(shared, make_mesh(shared.mesh)))
    assert _with_face_encoder(shared, wanted_shared, None) is None
    assert 'no separate face ViT' in capsys.readouterr().out


def test_a_face_encoder_is_for_the_separate_face_vit(tmp_path):
    with pytest.raises(ValueError, match='separate'):
        write_face_encoder(str(tmp_path / 'f'), tiny_config().model, examples=2, steps=1)
