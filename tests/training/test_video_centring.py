"""Video centring (model.video_centring): the running mean the train step keeps, and what the LLM is given."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from microemo_jax.batch import synthetic_batch
from microemo_jax.models.microemo import MicroEmo
from microemo_jax.models.video_centring import RunningMean
from microemo_jax.sharding import make_mesh
from microemo_jax.training import state as state_lib, step as step_lib
from microemo_jax.training.losses import next_token_loss
from tests.support.training import BATCH, SEQ, config

GAIN, MOMENTUM = 3.0, 0.9
CENTRED = (f'model.video_centring.gain={GAIN}', f'model.video_centring.momentum={MOMENTUM}')


def _centre(params):
    found = [v.get_value() for _, v in nnx.to_flat_state(params) if isinstance(v, RunningMean)]
    assert len(found) == 1
    return np.asarray(found[0])


def _uncentred(graphdef, params, frozen, batch):
    """The batch's per-slot mean of the video tokens before centring, as the model computes them."""
    model = nnx.merge(graphdef, params, frozen)
    stats = {}
    model.encode(batch, stats=stats)
    return np.asarray(stats['video_sum'] / np.maximum(stats['video_count'], 1.0)), np.asarray(stats['video_count'])


def _setup(*extra):
    """(graphdef, fresh state, frozen, compiled train step (no donation), two batches) of the tiny config."""
    cfg = config(*CENTRED, *extra)
    mesh = make_mesh({'data': 1, 'fsdp': 2, 'tensor': 2})
    abstract = state_lib.abstract_train_state(cfg, mesh)
    graphdef, state, frozen = state_lib.init_train_state(cfg, mesh, abstract=abstract)
    shardings = state_lib.shardings_of(abstract.state), state_lib.shardings_of(abstract.frozen)
    step = step_lib.make_train_step(graphdef, cfg, mesh, *shardings, donate=False)
    batches = [step_lib.device_batch(synthetic_batch(cfg.model, BATCH, SEQ, seed=s), mesh, cfg.sharding_rules)
               for s in (1, 2)]
    return graphdef, state, frozen, step, batches


@pytest.fixture(scope='module')
def centred():
    return _setup()


def test_the_first_step_sets_the_running_mean_and_later_steps_move_it(centred):
    graphdef, state, frozen, step, (b1, b2) = centred
    assert not _centre(state.params).any()                         # zeros before training
    mean1, count1 = _uncentred(graphdef, state.params, frozen, b1)
    s1, _ = step(state, frozen, b1)
    np.testing.assert_allclose(_centre(s1.params), mean1, rtol=1e-5, atol=1e-6)
    b2 = dict(b2, utterance_mask=jnp.zeros_like(b2['utterance_mask']))  # no clip has utterance slots
    mean2, count2 = _uncentred(graphdef, s1.params, frozen, b2)   # with the parameters the second step reads
    s2, _ = step(s1, frozen, b2)
    assert (count1 > 0).all() and (count2 > 0).any() and (count2 == 0).any()
    expected = np.where(count2 > 0, MOMENTUM * mean1 + (1 - MOMENTUM) * mean2, mean1)  # empty slots keep theirs
    np.testing.assert_allclose(_centre(s2.params), expected, rtol=1e-5, atol=1e-6)


def test_the_llm_gets_the_tokens_minus_the_running_mean_times_the_gain(centred):
    graphdef, state, frozen, step, (b1, _) = centred
    s1, _ = step(state, frozen, b1)
    model = nnx.merge(graphdef, s1.params, frozen)
    tokens, valid = model.encode(b1)
    n, centre = model.num_video_tokens, _centre(s1.params)
    model.video_centre.set_value(jnp.zeros_like(model.video_centre.get_value()))
    raw = np.asarray(model.encode(b1)[0]) / GAIN                   # with a zero mean: the gain alone
    np.testing.assert_allclose(np.asarray(tokens[:, :n]), GAIN * (raw[:, :n] - centre),
                               rtol=1e-4, atol=1e-5)
    assert np.abs(np.asarray(tokens[:, :n])).max() > 1e-3 and np.abs(centre).max() > 1e-3


def test_a_clips_tokens_do_not_depend_on_the_other_clips_of_its_batch(centred):
    graphdef, state, frozen, step, (b1, b2) = centred
    s1, _ = step(state, frozen, b1)
    model = nnx.merge(graphdef, s1.params, frozen)
    mixed = jax.tree.map(lambda x, y: jnp.concatenate([x[:1], y[1:]]), b1, b2)
    first = lambda b: np.asarray(model.encode(b)[0][0])  # noqa: E731
    np.testing.assert_allclose(first(mixed), first(b1), rtol=1e-5, atol=1e-6)


def test_gradient_accumulation_keeps_the_same_running_mean():
    graphdef, state, frozen, step, (batch, _) = _setup('optim.grad_accum_steps=2')
    mean, _ = _uncentred(graphdef, state.params, frozen, batch)
    s1, _ = step(state, frozen, batch)
    np.testing.assert_allclose(_centre(s1.params), mean, rtol=1e-5, atol=1e-6)


def test_no_running_mean_without_centring():
    model = MicroEmo(config().model, rngs=nnx.Rngs(0))
    assert model.video_centre is None
    assert not [v for _, v in nnx.to_flat_state(nnx.state(model)) if isinstance(v, RunningMean)]


def test_the_marker_is_added_to_the_centred_video_tokens_and_learns():
    """model.video_centring.marker: one learned vector per video token, added after the centring (the audio
    tokens keep theirs), built only when switched on, and trained."""
    assert MicroEmo(config(*CENTRED).model, rngs=nnx.Rngs(0)).video_marker is None
    cfg = config(*CENTRED, 'model.video_centring.marker=true')
    model = MicroEmo(cfg.model, rngs=nnx.Rngs(0))
    batch = jax.tree.map(jnp.asarray, synthetic_batch(cfg.model, BATCH, SEQ, seed=1))
    before = np.asarray(model.encode(batch)[0])
    marker = np.asarray(jax.random.normal(jax.random.key(0), model.video_marker.get_value().shape))
    model.video_marker.set_value(jnp.asarray(marker))
    after, n = np.asarray(model.encode(batch)[0]), model.num_video_tokens
    np.testing.assert_allclose(after[:, :n] - before[:, :n], np.broadcast_to(marker, after[:, :n].shape), atol=1e-5)
    np.testing.assert_array_equal(after[:, n:], before[:, n:])
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(p):
        return next_token_loss(nnx.merge(graphdef, p, rest)(batch), batch['input_ids'], batch['loss_mask'])[0]

    assert np.abs(np.asarray(jax.grad(loss)(params)['video_marker'].get_value())).max() > 0
