"""The assembled model on the ``tiny`` config: shapes, masking invariances, zero-init gates/LoRA, stage
gradients, and every switch: each changes what the model computes, padding never does.

Speed: every distinct model structure is one compile (~10 s on 2 cores), so each switch gets exactly one
logits program (module-scoped, built once), switch models copy the parameters they share with the base
model (so "changes the output" compares the switch alone, not a new initialisation), and the gradient
checks run two programs in all.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from microemo_jax.batch import synthetic_batch
from microemo_jax.config import load_config
from microemo_jax.data.shapes import token_budget
from microemo_jax.models.lora import merge_lora
from microemo_jax.models.microemo import MicroEmo, image_qformer_config
from microemo_jax.models.qformer import QFormer
from microemo_jax.training.losses import next_token_loss
from microemo_jax.training.stages import FROZEN_TOWERS, trainable_filter

SEQ = 64
VOCAB = 320  # configs/emer.py:tiny


@functools.cache
def config(*extra):
    return load_config('configs/emer.py:tiny', list(extra)).model


def build(*extra, use_lora=False, seed=0):
    return MicroEmo(config(*extra), use_lora=use_lora, rngs=nnx.Rngs(seed))


@functools.cache
def _batch(*extra):
    return synthetic_batch(config(*extra), 2, SEQ, seed=1)


def batch(*extra):
    return dict(_batch(*extra))


@jax.jit
def _logits(graphdef, state, batch):
    return nnx.merge(graphdef, state)(batch)


def logits(model, b):
    graphdef, state = nnx.split(model)
    return np.asarray(_logits(graphdef, state, {k: jnp.asarray(v) for k, v in b.items()}))


@jax.jit
def _encode(graphdef, state, batch):
    return nnx.merge(graphdef, state).encode(batch)


def encode(model, b):
    """The modality tokens and their validity (one program per model structure, without the LLM)."""
    graphdef, state = nnx.split(model)
    tokens, valid = _encode(graphdef, state, {k: jnp.asarray(v) for k, v in b.items()})
    return np.asarray(tokens), np.asarray(valid)


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


def set_gates(model, value=0.5):
    """Open the global-local gates (float32, not weakly typed: the model keeps its compiled programs)."""
    model.global_local.attn_gate.set_value(jnp.full((1,), value, jnp.float32))
    model.global_local.mlp_gate.set_value(jnp.full((1,), value, jnp.float32))
    return model


def copy_shared(dst, src):
    """Give ``dst`` every parameter of ``src`` with the same path and shape; returns the paths not copied."""
    theirs = {path: var for path, var in nnx.iter_graph(src) if isinstance(var, nnx.Variable)}
    fresh = set()
    for path, var in nnx.iter_graph(dst):
        if not isinstance(var, nnx.Variable):
            continue
        other = theirs.get(path)
        if other is not None and other.get_value().shape == var.get_value().shape:
            var.set_value(other.get_value())
        else:
            fresh.add(tuple(map(str, path)))
    return dst, fresh


def perturb_padding(b, seed=7):
    """Every padded element of the batch replaced by noise: frames, faces, face landmarks, timestamp text, utterance
    slots, audio past the clip, prompt padding."""
    rng = np.random.default_rng(seed)
    out = dict(b)
    frames = b['frames'].copy()
    frames[~b['frame_mask']] = rng.uniform(0, 255, frames[~b['frame_mask']].shape).astype(frames.dtype)
    faces = b['faces'].copy()
    faces[~b['face_mask']] = rng.uniform(0, 255, faces[~b['face_mask']].shape).astype(faces.dtype)
    ts_ids = b['timestamp_ids'].copy()
    pad = b['timestamp_mask'] == 0
    ts_ids[pad] = rng.integers(1, 60, int(pad.sum()))
    utts = b['utterances'].copy()
    utts[~b['utterance_mask']] = [[0.0, 9.0]]
    mel = b['audio_mel'].copy()
    for i, n_pos in enumerate(b['audio_mask'].sum(1)):
        mel[i, :, 2 * int(n_pos):] = 5.0 + rng.standard_normal(mel[i, :, 2 * int(n_pos):].shape)
    ids = b['input_ids'].copy()
    ids[~b['attention_mask']] = 5
    marks = b['face_landmarks'].copy()
    marks[~b['face_landmark_mask']] = rng.uniform(0, 1, marks[~b['face_landmark_mask']].shape)
    out.update(frames=frames, faces=faces, timestamp_ids=ts_ids, utterances=utts, audio_mel=mel, input_ids=ids,
               face_landmarks=marks)
    for key in ('frames', 'faces', 'timestamp_ids', 'audio_mel', 'input_ids', 'face_landmarks'):
        assert not np.array_equal(out[key], b[key]), f'{key}: the synthetic batch has no padding to perturb'
    return out


def assert_padding_has_no_effect(model, b, base=None):
    keep = text_positions(b)
    base = logits(model, b) if base is None else base
    np.testing.assert_allclose(logits(model, perturb_padding(b))[keep], base[keep], rtol=0, atol=1e-7)


def max_change(a, b, keep):
    return float(np.abs(a[keep] - b[keep]).max())


# ----------------------------------------------------------------------------------------------- base model
@pytest.fixture(scope='module')
def model():
    return build()


@pytest.fixture(scope='module')
def base_logits(model):
    return logits(model, batch())


@pytest.fixture(scope='module')
def gated():
    """The base model with its global-local gates open (same structure: shares the base model's compile)."""
    return _gated_base()


@pytest.fixture(scope='module')
def gated_logits(gated):
    return logits(gated, batch())


def test_shapes_and_token_budget(model, base_logits):
    m = config()
    video, audio = token_budget(m)
    assert (model.num_video_tokens, model.num_audio_tokens) == (video, audio) == ((1 + 2) * 4, (1 + 2) * 2)
    assert base_logits.shape == (2, SEQ, VOCAB) and base_logits.dtype == np.float32
    assert np.isfinite(base_logits).all()


def test_padding_does_not_change_the_output(model, base_logits, gated, gated_logits):
    b = batch()
    assert_padding_has_no_effect(model, b, base_logits)
    assert_padding_has_no_effect(gated, b, gated_logits)  # faces reach the output here
    # ...while a real frame does change it (the test can fail)
    frames = b['frames'].copy()
    frames[0, 0] = np.roll(frames[0, 0], 5, axis=-1)
    assert max_change(logits(model, with_(b, frames=frames)), base_logits, text_positions(b)) > 1e-6


def test_real_audio_changes_the_output(model, base_logits):
    b = batch()
    mel = b['audio_mel'].copy()
    mel[0, :, :4] += 3.0
    assert max_change(logits(model, with_(b, audio_mel=mel)), base_logits, text_positions(b)) > 1e-6


def test_global_local_gate_at_zero_leaves_faces_without_effect(model, base_logits, gated, gated_logits):
    b = batch()
    faces = np.roll(b['faces'], 3, axis=-1)  # other real crops (same dtype: no new program)
    keep = text_positions(b)
    np.testing.assert_allclose(logits(model, with_(b, faces=faces))[keep], base_logits[keep], rtol=1e-5, atol=1e-5)
    assert max_change(logits(gated, with_(b, faces=faces)), gated_logits, keep) > 1e-6
    np.testing.assert_allclose([float(gated.global_local.attn_gate[0]), float(gated.global_local.mlp_gate[0])], 0.5)
    np.testing.assert_allclose([float(model.global_local.attn_gate[0]), float(model.global_local.mlp_gate[0])], 0.0)


def test_lora_at_init_leaves_the_output_unchanged():
    """B = 0: the loss equals the base model's (adapters merged away); B != 0 changes it. Runs the gradient
    program of the next test (no program of its own)."""
    lora_model = build(use_lora=True)
    b = batch()
    merged = merge_lora(nnx.clone(lora_model))  # the base weights, adapters removed: the base model's program
    base = float(next_token_loss(jnp.asarray(logits(merged, b)), jnp.asarray(b['input_ids']),
                                 jnp.asarray(b['loss_mask']))[0])
    at_init = _loss_and_grads(lora_model, b, stage=2)[0]
    assert abs(at_init - base) < 1e-6
    assert abs(_loss_and_grads(_open_lora(lora_model), b, stage=2)[0] - base) > 1e-4


# ----------------------------------------------------------------------------------------------- gradients
def _paths(state):
    return {tuple(str(p) for p in path) for path, _ in nnx.to_flat_state(state)}


@jax.jit
def _value_and_grad(graphdef, trainable, rest, b):
    def loss_fn(trainable):
        logits = nnx.merge(graphdef, trainable, rest)(b)
        return next_token_loss(logits, b['input_ids'], b['loss_mask'])[0]
    return jax.value_and_grad(loss_fn)(trainable)


def _loss_and_grads(model, b, stage=2):
    """(loss, trainable state, gradients) for the trainable parameters of ``stage``: one program per structure."""
    graphdef, trainable, rest = nnx.split(model, trainable_filter(stage), ...)
    loss, grads = _value_and_grad(graphdef, trainable, rest, {k: jnp.asarray(v) for k, v in b.items()})
    return float(loss), trainable, grads


def _dead_params(model, b, stage=2):
    """Trainable parameters (of ``stage``) whose gradient is exactly zero on batch ``b``."""
    _, trainable, grads = _loss_and_grads(model, b, stage)
    return trainable, {tuple(map(str, p)) for p, g in nnx.to_flat_state(grads) if not np.any(np.asarray(g.get_value()))}


def _open_lora(model):
    for path, var in nnx.iter_graph(model):
        if isinstance(var, nnx.LoRAParam) and path[-1] == 'b':
            var.set_value(jnp.full(var.get_value().shape, 0.05, var.get_value().dtype))
    return model


def test_gradients_reach_exactly_the_parameters_of_each_stage():
    model = _open_lora(set_gates(build(use_lora=True)))  # open gates: the local branch is on the gradient path
    all_params = _paths(nnx.state(model, nnx.Param))
    frozen = {p for p in all_params if any(p[:len(t)] == t for t in FROZEN_TOWERS) and 'lora' not in p}
    lora = {p for p in all_params if 'lora' in p}
    stage1 = _paths(nnx.split(model, trainable_filter(1), ...)[1])
    assert frozen and lora and not (stage1 & frozen)
    assert stage1 == all_params - frozen - lora
    trainable, dead = _dead_params(model, batch(), stage=2)
    assert _paths(trainable) == stage1 | lora
    assert any(p[:2] == ('frame_encoder', 'qformer') for p in stage1)  # image Q-Former trains (TimeChat)
    # Nothing unused is built: not even the last image Q-Former layer's text FFN, whose output would be dropped.
    assert not dead, f"trainable parameters without gradient: {sorted(dead)}"


def test_every_parameter_of_the_non_default_switches_is_used():
    """All switches off their defaults at once (one compile): every trainable parameter gets a gradient."""
    extra = ('model.global_local.enabled=false', 'model.frame_encoder.keep_text_tokens=true',
             'model.frame_encoder.timestamp_tokenizer=llm', 'model.image_qformer.vocab_size=100',
             'model.micro_expression.face_encoder=separate', 'model.micro_expression.use_differences=false',
             'model.window_size=2', 'model.audio.pad_to_30s=true', 'model.micro_expression.landmarks=true')
    model = build(*extra)
    _, dead = _dead_params(model, batch(*extra), stage=1)
    # Rows of ids the batch does not hold have no gradient: that is a lookup table, not an unused parameter.
    dead.discard(('frame_encoder', 'qformer', 'word_embeddings', 'embedding'))
    assert not dead, f"trainable parameters without gradient: {sorted(dead)}"


def test_ablations_build_only_what_they_use():
    def top(*extra):
        return {p[0] for p in _paths(nnx.state(nnx.eval_shape(lambda: build(*extra)), nnx.Param))}
    no_attention = top('model.global_local.enabled=false')
    no_local = top('model.micro_expression.enabled=false')
    assert 'global_local' not in no_attention and {'local_proj', 'micro_expression'} <= no_attention
    assert not {'global_local', 'local_proj', 'micro_expression', 'face_vit'} & no_local
    assert 'local_proj' not in top()
    assert 'answer_words' not in top() and 'answer_words' in top('model.answer_words.weight=1.0')  # a training head
    no_text = nnx.eval_shape(lambda: build('model.frame_encoder.timestamp_text=false')).frame_encoder.qformer
    assert no_text.word_embeddings is None and all(layer.ffn_text is None for layer in no_text.layers)


def test_train_llm_makes_the_llm_base_trainable_too():
    model = nnx.eval_shape(lambda: build())
    llm_params = {p for p in _paths(nnx.state(model, nnx.Param)) if p[0] == 'llm'}
    _, frozen_llm, _ = nnx.split(model, trainable_filter(1), ...)
    _, trained, _ = nnx.split(model, trainable_filter(1, train_llm=True), ...)
    assert not (llm_params & _paths(frozen_llm)) and llm_params <= _paths(trained)
    assert not any(p[:2] == ('frame_encoder', 'vit') for p in _paths(trained))  # the ViT stays frozen


def test_a_frozen_face_encoder_is_not_trained_and_the_rest_of_the_branch_is():
    model = nnx.eval_shape(lambda: build('model.micro_expression.face_encoder=separate'))
    _, free, _ = nnx.split(model, trainable_filter(1), ...)
    _, frozen_face, _ = nnx.split(model, trainable_filter(1, train_face_encoder=False), ...)
    face = {p for p in _paths(nnx.state(model, nnx.Param)) if p[0] == 'face_vit'}
    assert face and face <= _paths(free) and not face & _paths(frozen_face)
    assert _paths(free) - face == _paths(frozen_face)               # the branch itself still trains


# ----------------------------------------------------------------------------------------------- switches
@functools.cache
def _switch_model(*extra):
    """A model with ``extra`` switches holding every parameter it shares with the gated base model (open gates
    included), and the paths of those it does not share."""
    return copy_shared(build(*extra), _gated_base())


@functools.cache
def _gated_base():
    return build('model.global_local.gate_init=0.5')      # the gates open from the start (the demo's setting)


def test_keep_text_tokens_keeps_real_text_and_masks_padded_text(gated_logits):
    extra = ('model.frame_encoder.keep_text_tokens=true',)
    model, fresh = _switch_model(*extra)
    last = str(config().image_qformer.num_layers - 1)
    assert {p[:5] for p in fresh} == {('frame_encoder', 'qformer', 'layers', last, 'ffn_text')}  # kept text: used
    b = batch()
    keep = text_positions(b)
    out = logits(model, b)
    assert max_change(out, gated_logits, keep) > 1e-6  # the text positions reach the video Q-Former
    # Changing only padded timestamp ids never changes the logits (TimeChat's quirk 2 let them through).
    ids = b['timestamp_ids'].copy()
    ids[b['timestamp_mask'] == 0] = 3
    np.testing.assert_allclose(logits(model, with_(b, timestamp_ids=ids))[keep], out[keep], rtol=0, atol=1e-7)
    assert_padding_has_no_effect(model, b, out)


def test_llm_timestamp_tokenizer_embeds_every_llm_id():
    """'llm': the Q-Former's word embedding covers the LLM vocabulary, even where the Q-Former's own is smaller."""
    extra = ('model.frame_encoder.timestamp_tokenizer=llm', 'model.image_qformer.vocab_size=100')
    model, _ = _switch_model(*extra)
    table = model.frame_encoder.qformer.word_embeddings.embedding.get_value()
    assert table.shape[0] == VOCAB
    b = batch(*extra)
    assert b['timestamp_ids'].max() >= 100  # the synthetic batch holds LLM ids beyond the Q-Former's vocabulary
    keep = text_positions(b)
    out = logits(model, b)
    ids = b['timestamp_ids'].copy()
    ids[0, 0, 1] = 250 if ids[0, 0, 1] != 250 else 251  # two ids past the Q-Former's own 100: distinct rows
    assert max_change(logits(model, with_(b, timestamp_ids=ids)), out, keep) > 1e-6
    assert_padding_has_no_effect(model, b, out)
    # A pretrained (smaller) Q-Former keeps its rows and gets new ones for the rest of the LLM vocabulary.
    m = config(*extra)
    small = QFormer(dataclasses.replace(image_qformer_config(config()), vocab_size=100), rngs=nnx.Rngs(1))
    rows = np.asarray(small.word_embeddings.embedding.get_value())
    resized = MicroEmo(m, image_qformer=small, rngs=nnx.Rngs(0)).frame_encoder.qformer
    table = np.asarray(resized.word_embeddings.embedding.get_value())
    assert table.shape[0] == resized.cfg.vocab_size == VOCAB and np.array_equal(table[:100], rows)


def test_without_global_local_attention_the_faces_enter_the_video_qformer(base_logits, gated_logits):
    """The 'no global-local attention' ablation differs from 'no micro-expression branch': faces still count."""
    extra = ('model.global_local.enabled=false',)
    model, fresh = _switch_model(*extra)
    assert fresh == {('local_proj', 'kernel'), ('local_proj', 'bias')}
    b = batch()
    keep = text_positions(b)
    out = logits(model, b)
    faces = np.roll(b['faces'], 3, axis=-1)  # other real crops (same dtype: no new program)
    assert max_change(logits(model, with_(b, faces=faces)), out, keep) > 1e-6
    # The base model with closed gates computes exactly what a model without the local branch computes;
    # this ablation does not.
    assert max_change(out, base_logits, keep) > 1e-6
    assert_padding_has_no_effect(model, b, out)


@pytest.mark.parametrize('switch, fresh', [
    ('model.global_local.neighbours=1', set()),
    ('model.micro_expression.face_encoder=separate', 'face_vit'),
    ('model.micro_expression.use_differences=false', set()),
    ('model.audio.pad_to_30s=true', set()),
    ('model.micro_expression.landmarks=true', 'micro_expression'),   # shape_proj, shape_motion
])
def test_switch_changes_the_output_and_padding_does_not(switch, fresh, gated_logits):
    model, new = _switch_model(switch)
    assert {p[0] for p in new} == ({fresh} if fresh else set())
    b = batch()
    out = logits(model, b)
    assert max_change(out, gated_logits, text_positions(b)) > 1e-6
    assert_padding_has_no_effect(model, b, out)


def test_neighbours_let_a_frame_read_adjacent_faces():
    gl = _switch_model('model.global_local.neighbours=1')[0].global_local  # the module alone: no extra compile
    rng = np.random.default_rng(0)
    g = jnp.asarray(rng.standard_normal((1, 4, 3, gl.norm_global.scale.get_value().shape[0])), jnp.float32)
    local = jnp.asarray(rng.standard_normal((1, 4, 2, gl.norm_local.scale.get_value().shape[0])), jnp.float32)
    mask = jnp.ones((1, 4, 2), bool)
    out = gl(g, local, mask)
    moved = gl(g, local.at[:, 1].add(1.0), mask)
    changed = np.abs(np.asarray(moved - out)).max(axis=(0, 2, 3))
    assert changed[0] > 0 and changed[1] > 0 and changed[2] > 0 and changed[3] == 0  # frames 0..2 read anchor 1
    padded = gl(g, local.at[:, 1].add(1.0), mask.at[:, 1].set(False))
    np.testing.assert_allclose(np.asarray(padded), np.asarray(gl(g, local.at[:, 1].add(7.0), mask.at[:, 1].set(False))),
                               atol=1e-6)


def test_windows_add_slots_that_read_only_their_frames():
    extra = ('model.window_size=2',)
    model, new = _switch_model(*extra)
    assert {p[0] for p in new} == {'video_qformer'}  # the slot embedding grows by the window slots
    m = config(*extra)
    assert model.num_video_tokens == (1 + m.max_utterances + 2) * m.video_qformer.num_query_tokens
    b = batch(*extra)
    q = m.video_qformer.num_query_tokens
    tokens, valid = encode(model, b)
    frames = b['frames'].copy()
    frames[0, 3] = np.roll(frames[0, 3], 5, axis=-1)        # frame 3: in window 1 (frames 2-3), not window 0
    moved = encode(model, with_(b, frames=frames))[0]
    slot = lambda x, i: x[0, i * q:(i + 1) * q]
    first_window = 1 + m.max_utterances
    np.testing.assert_array_equal(slot(moved, first_window), slot(tokens, first_window))
    assert np.abs(slot(moved, first_window + 1) - slot(tokens, first_window + 1)).max() > 1e-6
    assert np.abs(slot(moved, 0) - slot(tokens, 0)).max() > 1e-6  # the whole-video slot sees every frame
    # padding never changes a token that reaches the LLM (the modality tokens are all a prompt gets)
    padded = encode(model, perturb_padding(b))
    np.testing.assert_array_equal(padded[1], valid)
    np.testing.assert_allclose(padded[0][valid], tokens[valid], rtol=0, atol=1e-7)


def test_with_feature_baseline_a_still_face_gives_every_speaker_the_same_local_tokens():
    """micro_expression.feature_baseline: the branch sees only the face's departures from its clip's mean."""
    b = batch()
    faces = np.array(b['faces'])
    still = np.broadcast_to(faces[:, :1, :1], faces.shape)        # each clip: its first crop throughout
    mask = np.ones(faces.shape[:3], bool)

    def local(switch):
        model = build('model.micro_expression.face_encoder=separate', f'model.micro_expression.feature_baseline={switch}')
        return np.asarray(model.encode_faces(jnp.asarray(still), jnp.asarray(mask))[0])

    base, plain = local('true'), local('false')
    np.testing.assert_allclose(base[0], base[1], atol=1e-5)   # two speakers, both still: nothing tells them apart
    assert np.abs(plain[0] - plain[1]).max() > 1e-3
