"""generate(): greedy parity with transformers, padding, batching, eos, sampling, compile counts, sharding, MicroEmo.

Tiny models only. The compiled programs are shared: most tests reuse the (batch 3, bucket 16, 10 new
tokens) programs of the fixture checkpoint.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from microemo_jax import generate as gen_lib
from microemo_jax.generate import bucket_length, generate
from microemo_jax.hf import load_llama
from tests.support.parity import fixture, reference

GQA, TIED = 'llama_gqa_untied_llama3rope', 'llama_tied_sharded'
NEW = 10


@functools.cache
def model(name):
    return load_llama(fixture(name))


@functools.cache
def ref():
    return reference('llama_generate')


def case(name):
    r = ref()
    return r[f'{name}.input_ids'], r[f'{name}.attention_mask'], r[f'{name}.tokens']


class CompileCounter:
    """Counts lowerings of generate's programs (jax.monitoring), whether or not a compile cache then hits."""

    def __init__(self):
        self.names: list[str] = []
        jax.monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_event(self, event, duration, **kw):
        name = str(kw.get('fun_name', ''))
        if event == '/jax/core/compile/jaxpr_to_mlir_module_duration' and ('_prefill' in name or '_decode' in name):
            self.names.append(name)

    def take(self) -> list[str]:
        out, self.names = self.names, []
        return out


COMPILES = CompileCounter()


def right_padded(ids, mask):
    """The same prompts with their padding moved to the right."""
    ids2, mask2 = np.zeros_like(ids), np.zeros_like(mask)
    for r in range(ids.shape[0]):
        real = ids[r][mask[r].astype(bool)]
        ids2[r, :len(real)], mask2[r, :len(real)] = real, 1
    return ids2, mask2


# ------------------------------------------------------------------------------------------------ parity
@pytest.mark.parametrize('name', [GQA, TIED])
def test_greedy_equals_transformers_generate(name):
    """Left-padded prompts of lengths 9, 5, 2: the tokens of transformers' greedy generate, with and without an
    end-of-sequence id (after which the row keeps emitting it, as transformers pads with pad = eos)."""
    ids, mask, tokens = case(name)
    r = ref()
    assert r[f'{name}.margins'].min() > 1e-3  # no argmax of the reference is a near-tie
    out = generate(model(name), ids, mask, max_new_tokens=NEW)
    assert out.shape == (3, NEW) and out.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(out), tokens)
    eos = int(r[f'{name}.eos_token_id'])
    out = generate(model(name), ids, mask, max_new_tokens=NEW, eos_token_id=eos)
    np.testing.assert_array_equal(np.asarray(out), r[f'{name}.tokens_eos'])
    assert (np.asarray(out) == eos).any(axis=1).any() and not (r[f'{name}.tokens_eos'] == tokens).all()


def test_batch_gives_each_row_alone_with_left_or_right_padding():
    ids, mask, tokens = case(GQA)
    for row in range(ids.shape[0]):
        alone = ids[row][mask[row].astype(bool)][None]
        np.testing.assert_array_equal(np.asarray(generate(model(GQA), alone, max_new_tokens=NEW)), tokens[row:row + 1],
                                      err_msg=f'row {row} alone')
    ids_r, mask_r = right_padded(ids, mask)
    assert not np.array_equal(mask_r, mask)
    np.testing.assert_array_equal(np.asarray(generate(model(GQA), ids_r, mask_r, max_new_tokens=NEW)), tokens)
    # padding in the middle of a prompt, as empty modality slots leave it, changes nothing either
    ids_m, mask_m = ids_r.copy(), mask_r.copy()
    ids_m[1, 3:], mask_m[1, 3:] = ids_r[1, 2:-1], mask_r[1, 2:-1]  # row 1 (5 tokens) gets a hole at slot 2
    ids_m[1, 2], mask_m[1, 2] = 7, 0
    assert mask_m[1].sum() == mask[1].sum()
    np.testing.assert_array_equal(np.asarray(generate(model(GQA), ids_m, mask_m, max_new_tokens=NEW)), tokens)


def test_eos_stops_every_row_early_and_keeps_shape():
    ids, mask, tokens = case(GQA)
    eos = tuple(int(t) for t in tokens[:, 1])  # each row's second token: all rows finish by step 1
    out = np.asarray(generate(model(GQA), ids, mask, max_new_tokens=NEW, eos_token_id=eos))
    np.testing.assert_array_equal(out[:, :2], tokens[:, :2])
    assert (out[:, 2:] == eos[0]).all()  # padded with the first id once the row has ended


# ------------------------------------------------------------------------------------------ compilation
def test_one_prefill_and_one_decode_program_per_bucket():
    ids, mask, tokens = case(GQA)
    generate(model(GQA), ids, mask, max_new_tokens=NEW)
    COMPILES.take()
    # other prompt lengths (12 and 3 slots) within the same bucket of 16 reuse both programs
    longer = np.concatenate([np.zeros((3, 3), ids.dtype), ids], axis=1)
    out = generate(model(GQA), longer, np.concatenate([np.zeros((3, 3), mask.dtype), mask], axis=1),
                   max_new_tokens=NEW)
    np.testing.assert_array_equal(np.asarray(out), tokens)
    generate(model(GQA), ids[:, -3:], mask[:, -3:], max_new_tokens=NEW)
    assert COMPILES.take() == []
    # the next bucket compiles exactly one prefill and one decode loop, whatever the number of new tokens
    assert bucket_length(20) == 32 and bucket_length(16) == 16 and bucket_length(1500) == 2048
    long_ids = np.concatenate([np.ones((3, 11), ids.dtype), ids], axis=1)
    long_mask = np.concatenate([np.zeros((3, 11), mask.dtype), mask], axis=1)
    generate(model(GQA), long_ids, long_mask, max_new_tokens=NEW)
    names = COMPILES.take()
    assert len(names) == 2 and any('_prefill' in n for n in names) and any('_decode' in n for n in names), names


# ---------------------------------------------------------------------------------------------- sampling
def test_sampling_is_reproducible_and_top_k_1_is_greedy():
    ids, mask, tokens = case(GQA)
    kw = dict(max_new_tokens=NEW, temperature=1.5, top_k=40, top_p=0.9)
    a = np.asarray(generate(model(GQA), ids, mask, rng=jax.random.key(1), **kw))
    b = np.asarray(generate(model(GQA), ids, mask, rng=jax.random.key(1), **kw))
    c = np.asarray(generate(model(GQA), ids, mask, rng=jax.random.key(2), **kw))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(generate(model(GQA), ids, mask, rng=1, **kw)), a)  # an int seed
    assert not np.array_equal(a, c) and not np.array_equal(a, tokens)
    top1 = generate(model(GQA), ids, mask, rng=jax.random.key(3), max_new_tokens=NEW, temperature=1.5, top_k=1,
                    top_p=0.9)
    np.testing.assert_array_equal(np.asarray(top1), tokens)


def test_each_sampling_step_draws_with_its_own_key():
    """At a huge temperature every step's distribution is uniform whatever the logits: a step that reused the
    previous step's key would draw the same token again (same Gumbel noise, nearly equal logits), so a row of
    NEW tokens would hold one or two distinct ids. With a fresh key per step (``fold_in(rng, step)``) a row of 10
    draws from the vocabulary repeats hardly any."""
    ids, mask, _ = case(GQA)
    out = np.asarray(generate(model(GQA), ids, mask, rng=jax.random.key(7), max_new_tokens=NEW, temperature=1e6))
    distinct = [len(set(row.tolist())) for row in out]
    assert min(distinct) >= NEW - 3, distinct
    # and the draw is reproducible: the same key gives the same tokens
    again = np.asarray(generate(model(GQA), ids, mask, rng=jax.random.key(7), max_new_tokens=NEW, temperature=1e6))
    np.testing.assert_array_equal(out, again)


@jax.jit
def _draws(logits, keys, temperature, top_k, top_p):
    """The sampler with every filter compiled in (top_k = vocab and top_p = 1 switch them off)."""
    return jax.vmap(lambda k: gen_lib._sample(logits, k, (temperature, top_k, top_p), (True, True, True))[0])(keys)


def test_sampler_filters_follow_transformers_rules():
    probs = [0.05, 0.4, 0.3, 0.15, 0.1]
    logits = jnp.log(jnp.asarray([probs], jnp.float32))
    keys = jax.random.split(jax.random.key(0), 4000)

    def draw(temperature=1.0, top_k=5, top_p=1.0):
        tokens = _draws(logits, keys, jnp.float32(temperature), jnp.int32(top_k), jnp.float32(top_p))
        return np.bincount(np.asarray(tokens), minlength=5) / len(keys)

    np.testing.assert_allclose(draw(), probs, atol=0.03)
    assert set(np.flatnonzero(draw(top_k=2))) == {1, 2}
    # top_p: the smallest most-likely set whose probability reaches top_p
    assert set(np.flatnonzero(draw(top_p=0.75))) == {1, 2, 3}
    freq = draw(top_p=0.69)
    assert set(np.flatnonzero(freq)) == {1, 2}
    np.testing.assert_allclose(freq[[1, 2]], [0.4 / 0.7, 0.3 / 0.7], atol=0.03)
    # temperature applies before the nucleus (transformers' order): at 5.0 the top two no longer reach 0.5
    assert set(np.flatnonzero(draw(temperature=5.0, top_p=0.5))) == {1, 2, 3}
    assert set(np.flatnonzero(draw(top_p=1e-6))) == {1}
    # greedy: the first index of the maximum, as jnp.argmax and torch.argmax
    ties = jnp.asarray([[1.0, 3.0, 3.0, 0.0], [0.0, -1.0, 2.0, 2.0]])
    np.testing.assert_array_equal(gen_lib._argmax(ties), [1, 2])


# ---------------------------------------------------------------------------------------------- sharding
def test_sharded_generation_matches_with_the_training_rules():
    from microemo_jax.config import load_config
    from microemo_jax.sharding import make_mesh, state_shardings
    rules = load_config('configs/emer.py:demo').sharding_rules
    mesh = make_mesh({'data': 1, 'fsdp': 2, 'tensor': 2})
    ids, mask, tokens = case(GQA)
    rows = [0, 1, 2, 0]
    sharded = load_llama(fixture(GQA))
    state = nnx.state(sharded)
    nnx.update(sharded, jax.device_put(state, state_shardings(state, mesh, rules)))
    kernel = sharded.layers.blocks[0].self_attn.q_proj.kernel.get_value()
    assert len(kernel.sharding.device_set) == 4 and not kernel.sharding.is_fully_replicated
    out = generate(sharded, ids[rows], mask[rows], max_new_tokens=NEW, mesh=mesh, rules=rules)
    assert out.sharding.is_fully_replicated
    np.testing.assert_array_equal(np.asarray(out), tokens[rows])


# ------------------------------------------------------------------------------------------------ errors
def test_bad_inputs_raise_clear_errors():
    ids, mask, _ = case(GQA)
    m = model(GQA)
    with pytest.raises(ValueError, match='max_new_tokens'):
        generate(m, ids, mask, max_new_tokens=0)
    with pytest.raises(ValueError, match=r'rows \[1\] have no attended token'):
        generate(m, ids, np.where(np.arange(3)[:, None] == 1, 0, mask), max_new_tokens=2)
    with pytest.raises(ValueError, match='attention_mask has shape'):
        generate(m, ids, mask[:, 1:], max_new_tokens=2)
    with pytest.raises(ValueError, match='outside'):
        generate(m, ids + 1000, mask, max_new_tokens=2)
    with pytest.raises(ValueError, match='top_p'):
        generate(m, ids, mask, max_new_tokens=2, temperature=1.0, top_p=0.0)
    with pytest.raises(ValueError, match='batch'):
        generate(m, ids, mask, max_new_tokens=2, batch={})
    with pytest.raises(ValueError, match='sharding_rules'):
        generate(m, ids, mask, max_new_tokens=2, mesh=object())
    with pytest.raises(TypeError, match='Llama or a MicroEmo'):
        generate(object(), ids, mask, max_new_tokens=2)


# ---------------------------------------------------------------------------------------------- MicroEmo
def test_microemo_generation_continues_its_training_forward():
    """Greedy tokens of a tiny MicroEmo = argmax of its training forward (no cache) over the prompt + the
    tokens generated so far: the cache, the splicing and the masks agree with training."""
    from microemo_jax.batch import synthetic_batch
    from microemo_jax.config import load_config
    from microemo_jax.models.microemo import MicroEmo
    tiny = ['model.vision.image_size=32', 'model.vision.patch_size=16', 'model.num_frames=2', 'model.max_utterances=2',
            'model.image_qformer.num_query_tokens=2', 'model.video_qformer.num_query_tokens=2',
            'model.frame_encoder.max_timestamp_tokens=3', 'model.audio.enabled=False',
            'model.micro_expression.enabled=False', 'model.llm.vocab_size=64', 'model.llm.hidden_size=32',
            'model.llm.intermediate_size=48', 'model.llm.num_heads=4', 'model.llm.num_kv_heads=2',
            'model.llm.head_dim=8']
    cfg = load_config('configs/emer.py:demo', tiny).model
    m = nnx.eval_shape(lambda: MicroEmo(cfg, rngs=nnx.Rngs(0)))  # random weights from numpy: no eager init
    rng = np.random.default_rng(0)
    for path, var in nnx.iter_graph(m):
        if isinstance(var, nnx.Param):
            shape, name = var.get_value().shape, '/'.join(map(str, path))
            noise = rng.standard_normal(shape).astype(np.float32)
            var.set_value(jnp.asarray(1 + 0.1 * noise if name.endswith('scale') else
                                      (0.3 if name.startswith('llm') else 0.05) * noise))
    batch = synthetic_batch(cfg, 2, 24, seed=3)
    assert not batch['utterance_mask'].all()  # row 1 has an empty utterance slot: its tokens are masked
    batch['names'] = np.asarray(['a', 'b'])  # host-only entries are ignored
    n = 3
    out = np.asarray(generate(m, max_new_tokens=n, batch=batch))
    ext = dict(batch)
    ext.pop('names')
    ext['input_ids'] = np.concatenate([batch['input_ids'], out[:, :n - 1]], axis=1)
    ext['attention_mask'] = np.concatenate([batch['attention_mask'], np.ones((2, n - 1), bool)], axis=1)
    logits = np.asarray(jax.jit(lambda g, s, b: nnx.merge(g, s)(b))(*nnx.split(m), ext))
    last = np.flatnonzero(batch['attention_mask'][1]).max()
    assert last < batch['input_ids'].shape[1] - 1  # row 1 is right-padded
    for row in range(2):
        end = np.flatnonzero(batch['attention_mask'][row]).max()
        at = [end] + list(range(batch['input_ids'].shape[1], ext['input_ids'].shape[1]))
        np.testing.assert_array_equal(logits[row, at].argmax(-1), out[row], err_msg=f'row {row}')
