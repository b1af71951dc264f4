"""LLaMA decoder (and its Qwen2/Qwen3 switches) on tiny random weights: shapes, axes, sharding, LoRA, KV-cache
decoding, the chunked loss, padding, input checks."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs.emer import get_config
from microemo_jax.models.layers import attention, cache_attention
from microemo_jax.models.llama import Llama, LlamaConfig
from microemo_jax.models.lora import LoRAAdapter, LoRAConfig, merge_lora
from microemo_jax.sharding import make_mesh, state_shardings
from microemo_jax.training.losses import chunked_next_token_loss, next_token_loss

CFG = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=48, num_layers=2, num_heads=4, num_kv_heads=2,
                  head_dim=8, rms_norm_eps=1e-5, rope_theta=10000.0,
                  rope_scaling={'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0,
                                'high_freq_factor': 4.0, 'original_max_position_embeddings': 32},
                  max_position_embeddings=128, tie_word_embeddings=False)
TIED = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=48, num_layers=2, num_heads=4, num_kv_heads=4,
                   head_dim=8, tie_word_embeddings=True, attention_bias=True, mlp_bias=True)
# Qwen2: q/k/v biases (not o), tied head, rope theta 1e6. Qwen3: q/k norms, head_dim 16 != 32 / 4, YaRN RoPE.
QWEN2 = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=48, num_layers=2, num_heads=4, num_kv_heads=2,
                    head_dim=8, rope_theta=1e6, tie_word_embeddings=True, qkv_bias=True)
QWEN3 = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=48, num_layers=2, num_heads=4, num_kv_heads=1,
                    head_dim=16, rope_theta=1e6, qk_norm=True, max_position_embeddings=64,
                    rope_scaling={'rope_type': 'yarn', 'factor': 4.0, 'original_max_position_embeddings': 16})
ALL_TARGETS = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj')


def randomise(model, seed=0, std=0.2, kind=nnx.Param):
    """Fill ``kind`` parameters with spread-out values (norm scales around 1) so that attention is far
    from uniform and mistakes show; numpy keeps this free of per-shape compilations."""
    rng = np.random.default_rng(seed)
    for path, var in nnx.iter_graph(model):
        if isinstance(var, kind):
            value = var.get_value()
            noise = rng.standard_normal(value.shape).astype(np.float32)
            is_norm = any('norm' in str(p) for p in path)
            var.set_value(jnp.asarray(1.0 + 0.1 * noise if is_norm else std * noise, value.dtype))
    return model


def make(cfg=CFG, seed=0, **kw):
    """A model with random weights, built abstractly (no initialiser runs)."""
    return randomise(nnx.eval_shape(lambda: Llama(cfg, rngs=nnx.Rngs(0), **kw)), seed=seed)


def ids(b, s, seed=1, vocab=96):
    return jnp.asarray(np.random.default_rng(seed).integers(0, vocab, (b, s)), jnp.int32)


@nnx.jit
def forward(model, x, mask=None):
    return model(x, attention_mask=mask)


@pytest.mark.parametrize('cfg', [CFG, TIED, QWEN2, QWEN3], ids=['untied', 'tied', 'qwen2', 'qwen3'])
def test_shapes_axes_and_embeds_path(cfg):
    model = make(cfg)
    x = ids(2, 7)
    logits, from_embeds = nnx.jit(lambda m, x: (m(x), m(inputs_embeds=m.embed(x))))(model, x)
    assert logits.shape == (2, 7, cfg.vocab_size) and logits.dtype == jnp.float32
    np.testing.assert_allclose(from_embeds, logits, rtol=1e-6, atol=1e-6)
    assert (model.lm_head is None) == cfg.tie_word_embeddings
    for path, var in nnx.iter_graph(model):
        if isinstance(var, nnx.Param):
            axes = var.get_metadata().get('axes')
            assert axes is not None and len(axes) == var.get_value().ndim, path


@nnx.jit
def with_and_without_dropout(model, x, rng):
    return model(x), model(x, dropout_rng=rng)


def test_lora_at_init_is_identity_and_trained_lora_is_not():
    base = make()
    lora_cfg = LoRAConfig(rank=4, alpha=8, dropout=0.1)
    # cheap rbg keys; only the adapters are initialised for real (jit drops the unused base init)
    build = lambda: Llama(CFG, lora=lora_cfg, lora_targets=ALL_TARGETS,  # noqa: E731
                          rngs=nnx.Rngs(jax.random.key(5, impl='rbg')))
    lora = nnx.eval_shape(build)
    nnx.update(lora, jax.jit(lambda: nnx.state(build(), nnx.LoRAParam))())
    nnx.update(lora, nnx.state(base, nnx.Param))  # same base weights, adapters as initialised
    adapters = [n for _, n in nnx.iter_graph(lora) if isinstance(n, LoRAAdapter)]
    assert len(adapters) == len(ALL_TARGETS) * CFG.num_layers
    assert all(np.abs(a.b[...]).max() == 0 < np.abs(a.a[...]).max() for a in adapters)
    x, key = ids(2, 6), jax.random.key(0, impl='rbg')
    want = forward(base, x)
    fresh, fresh_dropped = with_and_without_dropout(lora, x, key)
    np.testing.assert_allclose(fresh, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fresh_dropped, want, rtol=1e-6, atol=1e-6)  # B = 0: dropout cannot matter
    randomise(lora, seed=7, std=0.1, kind=nnx.LoRAParam)
    trained, dropped = with_and_without_dropout(lora, x, key)
    assert np.abs(trained - want).max() > 1e-3
    assert np.abs(dropped - trained).max() > 1e-4  # adapter dropout acts only when given a key


@pytest.mark.parametrize('cfg,scan', [(CFG, False), (CFG, True), (QWEN3, True)], ids=['llama', 'scan', 'qwen3-scan'])
def test_kv_cache_greedy_decode_matches_full_forward(cfg, scan):
    model = make(cfg, scan=scan)
    graphdef, state = nnx.split(model)

    @jax.jit
    def step(state, tokens, mask, cache):
        return nnx.merge(graphdef, state)(tokens, attention_mask=mask, cache=cache)

    prompt_len, new_tokens, pad = 6, 4, 2
    prompt = ids(2, prompt_len, seed=3)
    prompt_mask = jnp.ones((2, prompt_len), jnp.int32).at[1, :pad].set(0)
    cache = model.init_cache(2, prompt_len + new_tokens + 5)  # spare slots must be ignored
    logits, cache = step(state, prompt, prompt_mask, cache)
    step_logits, tokens = [logits], [prompt]
    for _ in range(new_tokens):
        nxt = jnp.argmax(step_logits[-1][:, -1], axis=-1)[:, None].astype(prompt.dtype)
        tokens.append(nxt)
        logits, cache = step(state, nxt, jnp.ones((2, 1), jnp.int32), cache)
        step_logits.append(logits)
    assert int(cache.length) == prompt_len + new_tokens
    assert cache.k.shape == (cfg.num_layers, 2, cfg.num_kv_heads, prompt_len + new_tokens + 5, cfg.head_dim)
    full_mask = jnp.concatenate([prompt_mask, jnp.ones((2, new_tokens), jnp.int32)], axis=1)
    full = forward(model, jnp.concatenate(tokens, axis=1), full_mask)
    incremental = jnp.concatenate(step_logits, axis=1)
    real = np.asarray(full_mask, bool)
    scale = np.abs(np.asarray(full)[real]).max()
    assert scale > 1.0
    np.testing.assert_allclose(np.asarray(incremental)[real], np.asarray(full)[real], atol=1e-5 * scale, rtol=0)


@pytest.mark.parametrize('sq,mask_heads', [(1, 1), (3, 8)])
def test_cache_attention_on_the_head_major_cache_equals_attention(sq, mask_heads):
    """GQA (8 query heads on 2 cached heads), a shared or per-head mask, a row with no allowed key (zeros)."""
    b, h, hk, length, d = 3, 8, 2, 11, 16
    rng = np.random.default_rng(5)  # numpy: no per-shape compilation of random ops
    q, k, v = (rng.standard_normal(shape, np.float32) for shape in
               ((b, sq, h, d), (b, length, hk, d), (b, length, hk, d)))
    mask = rng.random((b, mask_heads, sq, length)) < 0.6
    mask[1] = False
    want = np.asarray(jax.jit(lambda q, k, v: attention(q, k, v, mask, implementation='reference'))(q, k, v))
    got = np.asarray(jax.jit(lambda q, k, v: cache_attention(q, k.swapaxes(1, 2), v.swapaxes(1, 2), mask))(q, k, v))
    assert np.abs(want[0]).max() > 0.1 and not got[1].any()
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_kv_cache_decode_with_the_reference_attention_matches():
    """attention_impl='reference' reads the head-major cache through attention() (transposed back)."""
    prompt, nxt = ids(2, 5, seed=6), ids(2, 1, seed=7)
    out = []
    for model in (make(), make(attention_impl='reference')):
        graphdef, state = nnx.split(model)

        @jax.jit
        def prefill_then_step(state):
            m = nnx.merge(graphdef, state)
            _, cache = m(prompt, cache=m.init_cache(2, 8))
            return m(nxt, cache=cache)[0]
        out.append(np.asarray(prefill_then_step(state)))
    np.testing.assert_allclose(out[0], out[1], atol=1e-5 * np.abs(out[1]).max(), rtol=0)


def test_padding_neither_leaks_nor_shifts_positions():
    model = make()
    x = ids(2, 9, seed=4)
    mask = jnp.ones((2, 9), jnp.int32).at[1, :3].set(0).at[0, 5].set(0)  # left padding and a hole
    scrambled = jnp.where(mask.astype(bool), x, (x + 17) % CFG.vocab_size)
    both = np.asarray(forward(model, jnp.concatenate([x, scrambled]), jnp.concatenate([mask, mask])))
    out, out2 = both[:2], both[2:]
    real = np.asarray(mask, bool)
    np.testing.assert_allclose(out2[real], out[real], rtol=1e-5, atol=1e-5)
    assert np.abs(out2[~real] - out[~real]).max() > 1e-3  # the padded slots themselves did change
    # the left-padded row computes what its unpadded tokens compute alone (positions start at 0), and
    # tokens after the hole see the positions they would have if it were removed
    alone = ids(2, 8)
    alone = alone.at[0].set(jnp.concatenate([x[0, :5], x[0, 6:]])).at[1, :6].set(x[1, 3:])
    alone_out = np.asarray(forward(model, alone))
    np.testing.assert_allclose(out[1, 3:], alone_out[1, :6], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[0, 6:], alone_out[0, 5:], rtol=1e-5, atol=1e-5)


def test_bad_inputs_raise():
    model = make()
    x = ids(2, 5)
    with pytest.raises(ValueError, match='exactly one'):
        model(x, inputs_embeds=model.embed(x))
    with pytest.raises(ValueError, match='exactly one'):
        model()
    with pytest.raises(ValueError, match='input_ids must be'):
        model(x[0])
    with pytest.raises(ValueError, match='integers'):
        model(x.astype(jnp.float32))
    with pytest.raises(ValueError, match='inputs_embeds must be'):
        model(inputs_embeds=jnp.zeros((2, 5, 16)))
    with pytest.raises(ValueError, match='attention_mask must have shape'):
        model(x, attention_mask=jnp.ones((2, 4)))
    with pytest.raises(ValueError, match='positions must have shape'):
        model(x, positions=jnp.ones((2, 4), jnp.int32))
    nearly_full = dataclasses.replace(model.init_cache(2, 6), length=jnp.asarray(5, jnp.int32))
    with pytest.raises(ValueError, match='do not fit'):
        model(x[:, :2], cache=nearly_full)
    with pytest.raises(ValueError, match='do not fit'):
        model(ids(2, 7), cache=model.init_cache(2, 6))
    with pytest.raises(ValueError, match='cache k/v'):
        model(x, cache=model.init_cache(3, 8))
    with pytest.raises(ValueError, match='unknown LoRA targets'):
        Llama(CFG, lora=LoRAConfig(4), lora_targets=('qproj',), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match='multiple of num_kv_heads'):
        LlamaConfig(vocab_size=8, hidden_size=8, intermediate_size=8, num_layers=1, num_heads=4, num_kv_heads=3,
                    head_dim=2)


def test_qwen_switches_build_their_parameters_and_shard_by_the_rules_table():
    """Biases on q/k/v only (Qwen2), q/k norms of head_dim (Qwen3), stacked on 'layers' when scanned; the
    config's one rules table places every parameter on a 2x2 (fsdp, tensor) mesh."""
    q2, q3 = make(QWEN2), make(QWEN3, scan=True)
    attn2 = q2.layers.blocks[0].self_attn
    assert all(getattr(attn2, p).bias is not None for p in ('q_proj', 'k_proj', 'v_proj'))
    assert attn2.o_proj.bias is None and attn2.q_norm is None and q2.lm_head is None
    attn3 = q3.layers.blocks.self_attn
    assert attn3.q_proj.bias is None and attn3.q_norm.scale.get_value().shape == (2, 16)
    assert attn3.k_norm.scale.get_metadata()['axes'] == ('layers', 'norm')
    rules = get_config('tiny').sharding_rules
    mesh = make_mesh({'data': 1, 'fsdp': 2, 'tensor': 2})
    for model in (q2, q3):
        shardings = state_shardings(nnx.state(model, nnx.Param), mesh, rules)
        assert len(jax.tree.leaves(shardings)) == len(jax.tree.leaves(nnx.state(model, nnx.Param)))
    specs = state_shardings(nnx.state(q3, nnx.Param), mesh, rules)
    assert tuple(specs['layers']['blocks']['self_attn']['q_proj']['kernel'].spec) == (None, 'fsdp', 'tensor')


def test_lora_on_every_projection_merges_into_a_qwen_model():
    """LoRA on all seven projections of a Qwen3 (q/k norm after the adapted q/k) and a Qwen2 (biased q/k/v):
    merging the adapters into the kernels computes what the adapted model computes."""
    for cfg in (QWEN2, QWEN3):
        build = lambda c=cfg: Llama(c, lora=LoRAConfig(rank=4, alpha=8, dropout=0.0),  # noqa: E731
                                    lora_targets=ALL_TARGETS, rngs=nnx.Rngs(0))
        model = randomise(nnx.eval_shape(build), seed=1)
        randomise(model, seed=2, std=0.1, kind=nnx.LoRAParam)
        x = ids(2, 6)
        adapted = np.asarray(forward(model, x))
        assert np.abs(adapted - np.asarray(forward(make(cfg, seed=1), x))).max() > 1e-3
        merged = np.asarray(forward(merge_lora(model), x))
        np.testing.assert_allclose(merged, adapted, atol=1e-5 * np.abs(adapted).max(), rtol=0)


def test_chunked_loss_with_a_tied_qwen_head_matches_the_plain_loss():
    model = make(QWEN2)
    x, mask = ids(2, 9), jnp.ones((2, 9), jnp.int32).at[:, :3].set(0)

    @nnx.jit
    def both(model, x, mask):
        plain = next_token_loss(model(x), x, mask)
        chunked = chunked_next_token_loss(model(x, hidden_only=True), model.head_kernel(), x, mask, chunk=5)
        return plain, chunked
    (plain, n), (chunked, m) = both(model, x, mask)
    assert float(n) == float(m) == 12
    np.testing.assert_allclose(float(chunked), float(plain), rtol=1e-5)


def test_a_sliding_window_limits_the_positions_a_call_may_use():
    cfg = dataclasses.replace(QWEN2, sliding_window=8, sliding_layers=(1,))
    model = make(cfg)
    assert forward(model, ids(1, 8)).shape == (1, 8, 96)
    with pytest.raises(ValueError, match=r'sliding_window 8 on layers \[1\].*limited to 8 positions'):
        model(ids(1, 9))
    with pytest.raises(ValueError, match='sliding_window 8'):
        model(ids(1, 2), cache=model.init_cache(1, 9))
    with pytest.raises(ValueError, match='go together'):
        dataclasses.replace(QWEN2, sliding_window=8)
    with pytest.raises(ValueError, match="rope_type 'ntk' is not supported"):
        dataclasses.replace(QWEN2, rope_scaling={'rope_type': 'ntk', 'factor': 2.0})
