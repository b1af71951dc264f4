"""Sharded init and the jitted train step on a 2x2 (fsdp x tensor) mesh of CPU devices."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from microemo_jax.sharding import logical_to_spec, variable_axes
from microemo_jax.training import step as step_lib
from microemo_jax.training.stages import FROZEN_TOWERS
from microemo_jax.training.state import path_name
from tests.support.training import config, copy_tree


def _flat(tree):
    return {path_name(p): v for p, v in nnx.to_flat_state(tree)}


def test_init_places_every_array_where_the_rules_say(setup):
    rules, mesh = setup.cfg.sharding_rules, setup.mesh
    for tree in (setup.state.params, setup.frozen):
        for name, var in _flat(tree).items():
            value = var.get_value()
            expected = logical_to_spec(variable_axes(var), value.shape, rules, mesh)
            assert value.sharding.spec == expected, name
    params, frozen = _flat(setup.state.params), _flat(setup.frozen)
    assert params['video_qformer/slots/qformer/layers/0/ffn_query/intermediate/kernel'].get_value().sharding.spec \
        == jax.sharding.PartitionSpec('fsdp', 'tensor')
    assert frozen['llm/embed_tokens/embedding'].get_value().sharding.spec == jax.sharding.PartitionSpec('tensor', 'fsdp')
    # Adam moments are sharded like their parameters; step and rng are replicated
    mu = _flat(setup.state.opt_state[1][0].mu)
    assert all(mu[n].get_value().sharding == params[n].get_value().sharding for n in params)
    assert setup.state.step.sharding.spec == jax.sharding.PartitionSpec()
    # the abstract state used for restore/AOT agrees with what init produced
    for a, x in zip(jax.tree.leaves(setup.abstract.state), jax.tree.leaves(setup.state)):
        assert (a.shape, a.dtype, a.sharding) == (x.shape, x.dtype, x.sharding)


def test_frozen_towers_hold_no_optimizer_state(setup):
    params, frozen = _flat(setup.state.params), _flat(setup.frozen)
    assert frozen and not set(params) & set(frozen)
    assert all(any(tuple(n.split('/')[:len(t)]) == t for t in FROZEN_TOWERS) for n in frozen)
    arrays = [x for x in jax.tree.leaves(setup.state.opt_state) if x.ndim > 0]
    assert len(arrays) == 2 * len(params)  # Adam mu and nu per trainable parameter (plus scalar counts)
    assert sum(x.size for x in arrays) == 2 * sum(v.get_value().size for v in params.values())
    adam = setup.state.opt_state[1][0]
    assert set(_flat(adam.mu)) == set(_flat(adam.nu)) == set(params)


def test_train_step_donates_state_and_the_loss_decreases(setup):
    state = copy_tree(setup.state)
    first_leaf = jax.tree.leaves(state.params)[0]
    losses = []
    for _ in range(5):
        previous = state
        state, metrics = setup.train_step(state, setup.frozen, setup.batch)
        losses.append(float(metrics['loss']))
    assert first_leaf.is_deleted()                                        # donated
    assert not jax.tree.leaves(setup.frozen)[0].is_deleted()              # frozen weights are not
    assert not any(x.is_deleted() for x in jax.tree.leaves(setup.batch))
    assert previous.step.is_deleted()
    assert losses[0] == losses[1] and losses[2] < losses[1], losses  # lr(0) = 0; the first real update helps
    assert losses[-1] < losses[0] - 0.02, losses  # (Adam at lr 0.01 may wobble; a frozen random LLM leaves little)
    assert int(state.step) == 5
    m = jax.device_get(metrics)
    assert set(m) == {'loss', 'answer_words', 'grad_norm', 'learning_rate', 'tokens', 'input_tokens', 'finite'}
    assert 0 < m['answer_words'] < np.log(setup.cfg.model.llm.vocab_size) + 1  # a cross-entropy over the vocabulary
    assert bool(m['finite']) and m['grad_norm'] > 0
    assert m['tokens'] == setup.host_batch['loss_mask'][:, 1:].sum()
    assert m['input_tokens'] == setup.host_batch['attention_mask'].sum()
    np.testing.assert_allclose(m['learning_rate'], 0.001 + 0.009 * 0.5 * (1 + np.cos(np.pi * 3 / 19)),
                               rtol=1e-5)  # update 4 (0-based) of a 1-step warmup, 20-step cosine
    assert not np.array_equal(np.asarray(state.rng), np.asarray(setup.state.rng))  # dropout key advances
    for a, x in zip(jax.tree.leaves(setup.abstract.state), jax.tree.leaves(state)):
        assert a.sharding == x.sharding


def test_gradient_accumulation_equals_the_whole_batch_step(setup):
    cfg2 = config('optim.grad_accum_steps=2')
    step2 = step_lib.make_train_step(setup.graphdef, cfg2, setup.mesh, setup.state_sharding, setup.frozen_sharding)
    # Start from a state after one update, where the learning rate is no longer 0 (warmup_steps=1), so
    # the parameters move; and compare the gradients themselves: after an update Adam's first moment is
    # b1 * mu + (1 - b1) * clipped gradient, which Adam's normalised step would hide in the parameters.
    start, m0 = setup.train_step(copy_tree(setup.state), setup.frozen, setup.batch)
    assert float(m0['learning_rate']) == 0.0
    one, m1 = setup.train_step(copy_tree(start), setup.frozen, setup.batch)
    two, m2 = step2(copy_tree(start), setup.frozen, setup.batch)
    assert float(m1['learning_rate']) == float(m2['learning_rate']) > 0
    np.testing.assert_allclose(float(m2['loss']), float(m1['loss']), rtol=1e-5)
    np.testing.assert_allclose(float(m2['grad_norm']), float(m1['grad_norm']), rtol=1e-4)
    assert float(m2['tokens']) == float(m1['tokens'])
    mu = lambda s: jax.tree.leaves(s.opt_state[1][0].mu)  # noqa: E731
    moved = 0
    for a, b, before in zip(mu(one), mu(two), mu(start)):
        a, b, before = np.asarray(a), np.asarray(b), np.asarray(before)
        g_a, g_b = (a - 0.9 * before) / 0.1, (b - 0.9 * before) / 0.1     # the two clipped gradients
        np.testing.assert_allclose(g_a, g_b, rtol=0, atol=1e-5 * max(1.0, np.abs(g_a).max()))
    lr = float(m1['learning_rate'])
    for a, b, before in zip(jax.tree.leaves(one.params), jax.tree.leaves(two.params), jax.tree.leaves(start.params)):
        # Adam's step is g / (sqrt(v) + eps): for near-zero gradients float rounding shows, hence 1% of lr
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=0.01 * lr)
        moved += int(not np.array_equal(np.asarray(a), np.asarray(before)))
    assert moved == len(jax.tree.leaves(start.params))                  # every trained parameter moved


def test_chunked_loss_gives_the_plain_step(setup):
    """train.loss_chunk fuses the head with the loss (no (B, S, vocab) logits): same loss and gradients."""
    cfg = config('train.loss_chunk=7')           # rows per chunk: not a divisor of the rows, so padding is exercised
    chunked = step_lib.make_train_step(setup.graphdef, cfg, setup.mesh, setup.state_sharding, setup.frozen_sharding)
    start, _ = setup.train_step(copy_tree(setup.state), setup.frozen, setup.batch)   # past the lr=0 step
    plain, m1 = setup.train_step(copy_tree(start), setup.frozen, setup.batch)
    fused, m2 = chunked(copy_tree(start), setup.frozen, setup.batch)
    np.testing.assert_allclose(float(m2['loss']), float(m1['loss']), rtol=1e-5)
    np.testing.assert_allclose(float(m2['grad_norm']), float(m1['grad_norm']), rtol=1e-4)
    mu = lambda s: jax.tree.leaves(s.opt_state[1][0].mu)  # noqa: E731  holds (1 - b1) * gradient after one update
    for a, b in zip(mu(plain), mu(fused)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-5 * max(1e-6, np.abs(a).max()))
    evals = [step_lib.make_eval_step(setup.graphdef, c, setup.mesh, setup.state_sharding, setup.frozen_sharding)
             for c in (setup.cfg, cfg)]
    losses = [float(e(start, setup.frozen, setup.batch)['loss']) for e in evals]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)


def test_non_finite_step_is_flagged_and_skipped(setup):
    # A NaN in a trained weight (not in the batch: a float batch where the contract says uint8 would be a
    # second compiled program) makes the loss non-finite with the session's compiled step.
    poisoned = jax.tree_util.tree_map_with_path(
        lambda p, x: x * jnp.nan if 'video_proj' in jax.tree_util.keystr(p) else x, copy_tree(setup.state.params))
    before = jax.device_get(poisoned)
    state, metrics = setup.train_step(setup.state.replace(params=poisoned, opt_state=copy_tree(setup.state.opt_state),
                                                          step=jnp.copy(setup.state.step), rng=jnp.copy(setup.state.rng)),
                                      setup.frozen, setup.batch)
    assert not bool(metrics['finite'])
    assert int(state.step) == 1                                           # data stays aligned with steps
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(a, np.asarray(b))                   # update skipped (NaNs compare equal)
    # optax's count did not advance, so the next (good) step uses, and logs, the first update's rate
    state, metrics = setup.train_step(state.replace(params=copy_tree(setup.state.params)), setup.frozen, setup.batch)
    schedule = step_lib.make_schedule(setup.cfg)
    assert int(state.step) == 2 and bool(metrics['finite'])
    assert int(step_lib.schedule_count(state.opt_state, None)) == 1
    assert float(metrics['learning_rate']) == float(schedule(0)) == 0.0, float(metrics['learning_rate'])


def test_eval_step_matches_the_train_loss(setup):
    eval_step = step_lib.make_eval_step(setup.graphdef, setup.cfg, setup.mesh, setup.state_sharding,
                                        setup.frozen_sharding)
    out = eval_step(setup.state, setup.frozen, setup.batch)
    _, metrics = setup.train_step(copy_tree(setup.state), setup.frozen, setup.batch)
    np.testing.assert_allclose(float(out['loss']), float(metrics['loss']), rtol=1e-5)
    val = step_lib.validation_loss(eval_step, setup.state, setup.frozen, [setup.host_batch] * 2, setup.mesh,
                                   setup.cfg.sharding_rules)
    np.testing.assert_allclose(val['val_loss'], float(out['loss']), rtol=1e-5)
    assert val['val_batches'] == 2 and val['val_tokens'] == 2 * float(out['tokens'])


def test_device_batch_drops_host_metadata_and_shards_rows(setup):
    assert 'names' not in setup.batch
    frames = setup.batch['frames']
    assert frames.sharding.spec == jax.sharding.PartitionSpec('fsdp')
    assert step_lib.batch_shards(setup.mesh, setup.cfg.sharding_rules) == 2
