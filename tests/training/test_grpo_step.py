"""Stage 3's programs on a tiny random MicroEmo: G samples per clip encoded once, behaviour log-probabilities equal
to the GRPO step's own scoring, and the update (micro-batches, a skipped non-finite update).

One small model (no audio or face branch, a 64-token LLM vocabulary), so each program compiles in seconds.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from microemo_jax.batch import synthetic_batch
from microemo_jax.config import load_config
from microemo_jax.generate import _prefill, generate, sample_placed
from microemo_jax.sharding import make_mesh
from microemo_jax.training import state as state_lib
from microemo_jax.training.flops import count_flops
from microemo_jax.training.grpo_step import completion_logprobs, make_grpo_step
from microemo_jax.training.rl_config import run_config
from microemo_jax.training.step import device_batch

pytestmark = pytest.mark.slow   # several small programs compile (about a minute on 2 cores)

SMALL = ['model.vision.image_size=32', 'model.vision.patch_size=16', 'model.num_frames=2', 'model.max_utterances=2',
         'model.image_qformer.num_query_tokens=2', 'model.video_qformer.num_query_tokens=2',
         'model.frame_encoder.max_timestamp_tokens=3', 'model.audio.enabled=False',
         'model.micro_expression.enabled=False', 'model.llm.vocab_size=64', 'model.llm.hidden_size=32',
         'model.llm.intermediate_size=48', 'model.llm.num_heads=4', 'model.llm.num_kv_heads=2',
         'model.llm.head_dim=8', 'model.lora.rank=2', 'model.lora.dropout=0.0', 'model.train_llm=false',
         'stage=3', 'rl.batch_size=4', 'rl.group_size=3', 'rl.max_new_tokens=5', 'rl.warmup_steps=0', 'rl.lr=0.05',
         'rl.temperature=1.3', 'rl.beta=0.5', 'mesh.data=2', 'mesh.fsdp=1', 'mesh.tensor=2']
B, G, T, SEQ, EOS = 4, 3, 5, 24, 1
REWARDS = np.asarray([0.0, 1.0, 0.5, 2.0, 0.0, 1.0, 0.3, 0.3, 0.9, 1.0, 0.0, 0.0], np.float32)


@functools.cache
def config(*extra):
    return run_config(load_config('configs/emer.py:demo', SMALL + list(extra)))


@functools.cache
def setup():
    cfg = config()
    mesh = make_mesh({'data': 2, 'fsdp': 1, 'tensor': 2})
    abstract = state_lib.abstract_train_state(cfg, mesh)
    graphdef, state, frozen = state_lib.init_train_state(cfg, mesh, abstract=abstract)
    # LoRA B starts at 0 (the adapters would change nothing): give every trained parameter some noise
    rng = np.random.default_rng(1)
    params = jax.tree.map(lambda x: x + 0.2 * jnp.asarray(rng.standard_normal(x.shape), x.dtype), state.params)
    state = state.replace(params=params)
    batch = synthetic_batch(cfg.model, B, SEQ, seed=3)
    batch['loss_mask'][:] = False
    return cfg, mesh, abstract, graphdef, state, frozen, device_batch(batch, mesh, cfg.sharding_rules)


def rollout(key=0):
    cfg, mesh, _, graphdef, state, frozen, batch = setup()
    inputs = {k: v for k, v in batch.items() if k != 'loss_mask'}
    tokens, logp = sample_placed(graphdef, (state.params, frozen), inputs, max_new_tokens=T, temperature=1.3,
                                 eos=(EOS,), rng=jax.random.key(key), num_samples=G, return_logprobs=True,
                                 mesh=mesh, rules=cfg.sharding_rules, replicate=False)
    return tokens, logp


def test_samples_of_a_clip_share_one_encoding_and_match_repeated_prompts():
    cfg, mesh, _, graphdef, state, frozen, batch = setup()
    model = nnx.merge(graphdef, state.params, frozen)
    host = jax.device_get(batch)
    # the G samples of a clip: the rows of the prompt repeated G times, drawn with the same key
    kw = dict(max_new_tokens=T, temperature=1.3, eos_token_id=EOS, rng=jax.random.key(7), mesh=mesh,
              rules=cfg.sharding_rules, return_logprobs=True)
    tokens, logp = generate(model, batch=host, num_samples=G, **kw)
    tokens2, logp2 = generate(model, batch={k: np.repeat(v, G, axis=0) for k, v in host.items()}, **kw)
    np.testing.assert_array_equal(np.asarray(tokens), np.asarray(tokens2))
    np.testing.assert_allclose(np.asarray(logp), np.asarray(logp2), atol=1e-5)
    assert len({tuple(r) for r in np.asarray(tokens)[:G]}) > 1          # the samples of one clip differ
    # and the encoders and the prefill ran once per clip: the prefill's matmul FLOPs do not grow with G
    inputs = {k: jnp.asarray(v) for k, v in host.items() if k != 'loss_mask'}
    flops = {r: count_flops(functools.partial(_prefill, max_len=SEQ + T, mesh=None, rules=None, repeat=r),
                            graphdef, (state.params, frozen), inputs) for r in (1, G)}
    rows = count_flops(functools.partial(_prefill, max_len=SEQ + T, mesh=None, rules=None, repeat=1), graphdef,
                       (state.params, frozen), {k: jnp.repeat(v, G, axis=0) for k, v in inputs.items()})
    assert flops[G] == flops[1] and rows == pytest.approx(G * flops[1], rel=1e-6)


def test_behaviour_logprobs_equal_the_steps_own_scoring():
    """The decode's log-probabilities (KV cache, one token at a time) = the GRPO step's (one pass over prompt +
    answer): the ratio starts at 1, and the answer the step scores is the one that was sampled."""
    cfg, mesh, _, graphdef, state, frozen, batch = setup()
    tokens, logp = rollout()
    score = jax.jit(lambda p, f, b, t: completion_logprobs(nnx.merge(graphdef, p, f), b, t, G, 1.3))
    again, entropy = score(state.params, frozen, batch, tokens)
    tokens, logp, again = map(np.asarray, (tokens, logp, again))
    after = np.cumsum(tokens == EOS, axis=1) - (tokens == EOS) > 0    # past each row's first EOS: logp 0 there
    np.testing.assert_allclose(np.where(after, 0.0, again), logp, atol=2e-5)
    assert np.isfinite(np.asarray(entropy)).all()


def _step_inputs(rewards=None, old=None):
    cfg, *_ = setup()
    tokens, logp = rollout()
    rewards = REWARDS if rewards is None else rewards
    parts = np.stack([rewards, np.ones_like(rewards)], axis=1)
    eos = np.full(8, -1, np.int32)
    eos[0] = EOS
    return dict(tokens=tokens, old_logp=logp if old is None else old, ref_logp=logp, rewards=jnp.asarray(rewards),
                parts=jnp.asarray(parts), valid=jnp.ones(B * G, bool), eos=jnp.asarray(eos))


def _run_step(cfg, ro):
    _, mesh, abstract, graphdef, state, frozen, batch = setup()
    state_sh, frozen_sh = state_lib.shardings_of(abstract.state), state_lib.shardings_of(abstract.frozen)
    step = make_grpo_step(graphdef, cfg, mesh, state_sh, frozen_sh, donate=False)
    new, metrics = step(state, frozen, batch, ro)
    return new, {k: float(v) for k, v in jax.device_get(metrics).items()}


def _flat(tree):
    return np.concatenate([np.asarray(x).ravel() for x in jax.tree.leaves(tree)])


def test_one_update_starts_at_ratio_one_and_moves_the_policy():
    cfg, *_, state, _, _ = setup()
    ro = _step_inputs()
    new, m = _run_step(cfg, ro)
    assert m['finite'] and np.isfinite(m['loss']) and m['grad_norm'] > 0
    assert m['ratio_mean'] == pytest.approx(1.0, abs=1e-5) and m['clip_fraction'] == 0.0 and m['kl'] < 1e-9
    assert m['reward_mean'] == pytest.approx(REWARDS.mean(), rel=1e-6)
    assert m['reward_ov'] == pytest.approx(m['reward_mean']) and m['reward_format'] == 1.0
    assert m['valid_groups'] == B and 1 <= m['response_length'] <= T and int(new.step) == int(state.step) + 1
    assert not np.allclose(_flat(new.params), _flat(state.params))

    # the same loss and gradient over two micro-batches of whole groups (Adam's first step divides each gradient
    # by its own size, so parameters whose gradient is ~0 may move differently: compare the gradient)
    _, m2 = _run_step(config('optim.grad_accum_steps=2'), ro)
    assert m2['loss'] == pytest.approx(m['loss'], rel=1e-4, abs=1e-7)
    assert m2['grad_norm'] == pytest.approx(m['grad_norm'], rel=1e-4)

    # (mu > 1 runs in tests/test_train_rl.py: one compile fewer here)
    # a non-finite loss skips the update: parameters and optimiser state unchanged, finite False
    bad = dict(ro, old_logp=jnp.full(ro['old_logp'].shape, jnp.nan))
    new4, m4 = _run_step(cfg, bad)
    assert not m4['finite']
    np.testing.assert_array_equal(_flat(new4.params), _flat(state.params))
    np.testing.assert_array_equal(_flat(new4.opt_state), _flat(state.opt_state))


def test_equal_rewards_give_no_gradient():
    """Answers of a group that all score the same have advantage 0, and the policy still equals the reference
    (the k3 term's gradient is 0 there): nothing to learn from this batch."""
    new, m = _run_step(config(), _step_inputs(rewards=np.full(B * G, 0.1, np.float32)))
    # ~0: only the KL term's gradient is left, at a policy equal to the reference up to the ~1e-6 by which the
    # cached decode's log-probabilities and the step's differ (advantage residues gave 0.018 before the fix)
    assert m['grad_norm'] < 1e-5 and m['reward_std'] == 0.0
