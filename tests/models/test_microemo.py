"""The assembled model on a tiny config: shapes, masking invariances, zero-init gates/LoRA, stage gradients."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from microemo_jax.batch import synthetic_batch, token_budget
from microemo_jax.config import load_config
from microemo_jax.losses import next_token_loss
from microemo_jax.models.lora import merge_lora
from microemo_jax.models.microemo import MicroEmo
from microemo_jax.stages import FROZEN_TOWERS, trainable_filter

SEQ = 64
TINY = ['model.vision.image_size=32', 'model.vision.patch_size=16', 'model.num_frames=4',
        'model.micro_expression.num_crops=3', 'model.max_utterances=2', 'model.audio.max_source_positions=24',
        'model.image_qformer.num_query_tokens=4', 'model.video_qformer.num_query_tokens=4',
        'model.audio_qformer.num_query_tokens=2', 'model.frame_encoder.max_timestamp_tokens=5',
        'model.llm.vocab_size=128', 'model.llm.hidden_size=64', 'model.llm.intermediate_size=96',
        'model.llm.num_heads=4', 'model.llm.num_kv_heads=2', 'model.llm.head_dim=16', 'model.lora.dropout=0.0',
        'model.micro_expression.dropout=0.0']


@functools.cache
def config(*extra):
    return load_config('configs/emer.py:demo', TINY + list(extra)).model


def build(*extra, use_lora=False, seed=0):
    return MicroEmo(config(*extra), use_lora=use_lora, rngs=nnx.Rngs(seed))


@functools.cache
def batch():
    return synthetic_batch(config(), 2, SEQ, seed=1)


@jax.jit
def _logits(graphdef, state, batch):
    return nnx.merge(graphdef, state)(batch)


def logits(model, b):
    graphdef, state = nnx.split(model)
    return np.asarray(_logits(graphdef, state, {k: jnp.asarray(v) for k, v in b.items()}))


def text_positions(b):
    """Real (attended, non-placeholder) token positions, where outputs must not change."""
    keep = b['attention_mask'].copy()
    rows = np.arange(keep.shape[0])[:, None]
    keep[rows, b['modality_positions']] = False
    return keep


def with_(b, **changes):
    out = dict(b)
    out.update(changes)
    return out


@pytest.fixture(scope='module')
def model():
    return build()


@pytest.fixture(scope='module')
def base_logits(model):
    return logits(model, batch())


def test_shapes_and_token_budget(model, base_logits):
    m = config()
    video, audio = token_budget(m)
    assert (model.num_video_tokens, model.num_audio_tokens) == (video, audio) == ((1 + 2) * 4, (1 + 2) * 2)
    assert base_logits.shape == (2, SEQ, 128) and base_logits.dtype == np.float32
    assert np.isfinite(base_logits).all()


def test_padded_frames_faces_utterances_and_audio_do_not_change_the_output(model, base_logits):
    b = batch()
    rng = np.random.default_rng(7)
    frames = b['frames'].copy()
    frames[~b['frame_mask']] = rng.standard_normal(frames[~b['frame_mask']].shape)
    faces = b['faces'].copy()
    faces[~b['face_mask']] = rng.standard_normal(faces[~b['face_mask']].shape)
    utts = b['utterances'].copy()
    utts[~b['utterance_mask']] = [[0.0, 9.0]]
    mel = b['audio_mel'].copy()
    mel[..., 2 * int(b['audio_mask'][0].sum()) + 2:] = 5.0  # beyond the last valid encoder position
    ids = b['input_ids'].copy()
    ids[~b['attention_mask']] = 5
    changed = with_(b, frames=frames, faces=faces, utterances=utts, input_ids=ids)
    keep = text_positions(b)
    np.testing.assert_allclose(logits(model, changed)[keep], base_logits[keep], rtol=0, atol=1e-6)
    # ...while a real frame does change it (the test can fail)
    frames2 = b['frames'].copy()
    frames2[0, 0] = 10 * rng.standard_normal(frames2[0, 0].shape)
    assert np.abs(logits(model, with_(b, frames=frames2))[keep] - base_logits[keep]).max() > 1e-5


def test_global_local_gate_at_zero_leaves_faces_without_effect(model, base_logits):
    b = batch()
    faces = b['faces'] + 1.0
    keep = text_positions(b)
    np.testing.assert_allclose(logits(model, with_(b, faces=faces))[keep], base_logits[keep], rtol=1e-5, atol=1e-5)
    gated = build()
    gated.global_local.attn_gate.set_value(jnp.full((1,), 0.5))
    gated.global_local.mlp_gate.set_value(jnp.full((1,), 0.5))
    assert np.abs(logits(gated, with_(b, faces=faces))[keep] - logits(gated, b)[keep]).max() > 1e-5


def test_lora_at_init_leaves_the_output_unchanged():
    lora_model = build(use_lora=True)
    without_adapters = merge_lora(nnx.clone(lora_model))  # B = 0: the base weights, adapters removed
    keep = text_positions(batch())
    base = logits(without_adapters, batch())[keep]
    np.testing.assert_allclose(logits(lora_model, batch())[keep], base, rtol=0, atol=1e-6)
    for path, var in nnx.iter_graph(lora_model):
        if isinstance(var, nnx.LoRAParam) and path[-1] == 'b':
            var.set_value(jnp.full(var.get_value().shape, 0.05))
    assert np.abs(logits(lora_model, batch())[keep] - base).max() > 1e-4


def _grads(model, stage):
    graphdef, trainable, rest = nnx.split(model, trainable_filter(stage), ...)
    b = {k: jnp.asarray(v) for k, v in batch().items()}

    @jax.jit
    def loss_fn(trainable, rest):
        logits = nnx.merge(graphdef, trainable, rest)(b)
        return next_token_loss(logits, b['input_ids'], b['loss_mask'])[0]
    return trainable, jax.grad(loss_fn)(trainable, rest)


def _paths(state):
    return {tuple(str(p) for p in path) for path, _ in nnx.to_flat_state(state)}


@pytest.mark.parametrize('stage', [1, 2])
def test_gradients_reach_exactly_the_parameters_of_each_stage(stage):
    model = build(use_lora=stage == 2)
    model.global_local.attn_gate.set_value(jnp.full((1,), 0.5))  # so the local branch is on the gradient path
    model.global_local.mlp_gate.set_value(jnp.full((1,), 0.5))
    for path, var in nnx.iter_graph(model):
        if isinstance(var, nnx.LoRAParam) and path[-1] == 'b':
            var.set_value(jnp.full(var.get_value().shape, 0.05))
    trainable, grads = _grads(model, stage)
    paths = _paths(trainable)
    all_params = _paths(nnx.state(model, nnx.Param))
    frozen = {p for p in all_params if any(p[:len(t)] == t for t in FROZEN_TOWERS) and 'lora' not in p}
    lora = {p for p in all_params if 'lora' in p}
    assert frozen and not (paths & frozen)
    assert paths == all_params - frozen - (lora if stage == 1 else set())
    if stage == 2:
        assert lora and lora <= paths
    assert any(p[:2] == ('frame_encoder', 'qformer') for p in paths)  # image Q-Former trains (TimeChat)
    dead = {tuple(map(str, p)) for p, g in nnx.to_flat_state(grads) if not np.any(np.asarray(g.get_value()))}
    # The only exception: the text-side FFN of the image Q-Former's last layer feeds text positions that
    # are dropped from the output (keep_text_tokens=False), as in InstructBLIP.
    last = config().image_qformer.num_layers - 1
    unused = {p for p in paths if p[:5] == ('frame_encoder', 'qformer', 'layers', str(last), 'ffn_text')}
    assert unused and dead == unused, f"trainable parameters without gradient: {sorted(dead - unused)}"


def test_train_llm_makes_the_llm_base_trainable_too():
    model = build()
    llm_params = {p for p in _paths(nnx.state(model, nnx.Param)) if p[0] == 'llm'}
    _, frozen_llm, _ = nnx.split(model, trainable_filter(1), ...)
    _, trained, _ = nnx.split(model, trainable_filter(1, train_llm=True), ...)
    assert not (llm_params & _paths(frozen_llm)) and llm_params <= _paths(trained)
    assert not any(p[:2] == ('frame_encoder', 'vit') for p in _paths(trained))  # the ViT stays frozen
