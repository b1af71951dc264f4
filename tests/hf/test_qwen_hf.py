"""Qwen2/2.5 and Qwen3 through ``hf.load_llm``: transformers' logits and greedy tokens on a left-padded batch,
the config switches each family sets, the export round trip, and the configs we refuse.

Fixtures (tools/reference_fixtures/qwen.py): two checkpoints per family differing in size and settings, plus a
dynamic-NTK one. Each family difference is also shown to matter on its fixture (dropping it moves the logits
far past the parity tolerance), so the parity tests guard it.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from microemo_jax.generate import generate
from microemo_jax.hf import load_llm, save_llm
from microemo_jax.hf.llm_config import llm_config_from_hf
from microemo_jax.hf.safetensors_io import CheckpointError, HFCheckpoint
from microemo_jax.models.layers import Dense
from microemo_jax.models.lora import LoRAConfig
from tests.support.parity import assert_parity, fixture, reference

QWEN2, QWEN2_B = 'qwen2_tied_bias', 'qwen2_untied_yarn_sharded'
QWEN3, QWEN3_B = 'qwen3_qknorm_untied', 'qwen3_tied_bias_linear'
DYNAMIC = 'qwen3_dynamic'
GENERATING = (QWEN2, QWEN2_B, QWEN3, QWEN3_B)
ALL_TARGETS = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj')


@nnx.jit
def forward(model, ids, mask):
    return model(ids, attention_mask=mask)


def logits(model, ref):
    return np.asarray(forward(model, jnp.asarray(ref['input_ids'], jnp.int32),
                              jnp.asarray(ref['attention_mask'], jnp.int32)))


@functools.cache
def loaded(case, scan=False):
    return load_llm(fixture(case), scan=scan)


def config_json(case):
    with open(os.path.join(fixture(case), 'config.json')) as f:
        return json.load(f)


def assert_matches_reference(model, case):
    ref = reference(case)
    real = ref['attention_mask'].astype(bool)
    assert not real.all()  # row 1 is left-padded
    assert_parity(logits(model, ref)[real], ref['logits'][real], rtol=1e-4)


@pytest.mark.parametrize('case', [QWEN2, QWEN2_B, QWEN3, QWEN3_B, DYNAMIC])
def test_logits_equal_transformers(case):
    assert_matches_reference(loaded(case), case)


@pytest.mark.parametrize('case', [QWEN2_B, QWEN3])
def test_scanned_layers_give_the_same_logits(case):
    ref = reference(case)
    unrolled, scanned = logits(loaded(case), ref), logits(loaded(case, scan=True), ref)
    np.testing.assert_allclose(scanned, unrolled, rtol=0, atol=1e-5 * np.abs(unrolled).max())


@pytest.mark.parametrize('case', GENERATING)
def test_greedy_generation_on_a_left_padded_batch(case):
    ref = reference(case)
    assert ref['gen.margins'].min() > 1e-3  # no argmax of the reference is a near-tie
    ids, mask = ref['gen.input_ids'], ref['gen.attention_mask']
    assert (mask[:, 0] == 0).any() and mask[:, -1].all()  # left padding
    model = loaded(case)
    out = generate(model, jnp.asarray(ids, jnp.int32), attention_mask=mask, max_new_tokens=10)
    assert out.shape == (3, 10) and out.dtype == jnp.int32  # n tokens when no EOS is given
    np.testing.assert_array_equal(np.asarray(out), ref['gen.tokens'])
    out_eos = generate(model, ids, attention_mask=mask, max_new_tokens=10, eos_token_id=int(ref['gen.eos_token_id']))
    np.testing.assert_array_equal(np.asarray(out_eos), ref['gen.tokens_eos'])


def test_each_family_reads_its_switches():
    q2, q2b = llm_config_from_hf(config_json(QWEN2)), llm_config_from_hf(config_json(QWEN2_B))
    assert q2.qkv_bias and not q2.attention_bias and not q2.qk_norm and q2.tie_word_embeddings
    assert (q2.rope_theta, q2.rope_scaling, q2.head_dim) == (1e6, None, 8)
    assert config_json(QWEN2)['eos_token_id'] is None and 'rope_parameters' in config_json(QWEN2)
    assert not q2b.tie_word_embeddings
    assert (q2b.num_heads, q2b.num_kv_heads, q2b.head_dim, q2b.hidden_size) == (6, 2, 8, 24)
    assert 'rope_scaling' in config_json(QWEN2_B)  # the old spelling, with 'type'
    assert q2b.rope_theta == 5e5 and q2b.rope_params == {'rope_type': 'yarn', 'factor': 4.0,
                                                          'original_max_position_embeddings': 16}
    assert (q2b.sliding_window, q2b.sliding_layers) == (48, (2,))
    q3, q3b = llm_config_from_hf(config_json(QWEN3)), llm_config_from_hf(config_json(QWEN3_B))
    assert q3.qk_norm and not q3.qkv_bias and not q3.attention_bias and not q3.tie_word_embeddings
    assert q3.head_dim == 16 != q3.hidden_size // q3.num_heads
    assert q3b.qk_norm and q3b.attention_bias and q3b.tie_word_embeddings and q3b.num_kv_heads == 1
    assert q3b.rope_params == {'rope_type': 'linear', 'factor': 2.0} and q3b.rms_norm_eps == 1e-5
    # Qwen3Config's head_dim default is 128, not hidden/heads
    no_head_dim = {k: v for k, v in config_json(QWEN3).items() if k != 'head_dim'}
    assert llm_config_from_hf(no_head_dim).head_dim == 128
    assert llm_config_from_hf({**config_json(QWEN2), 'model_type': 'qwen2'}).head_dim == 32 // 4


def test_each_family_difference_changes_the_logits():
    """Dropping a family difference moves the logits far past the parity tolerance, so the parity tests above
    fail when it is lost: q/k/v biases (Qwen2), q/k norms (Qwen3), the tied head (both)."""
    def drift(case, edit):
        model = load_llm(fixture(case))
        ref = reference(case)
        edit(model)
        real = ref['attention_mask'].astype(bool)
        got, want = logits(model, ref)[real], ref['logits'][real]
        return np.abs(got - want).max() / np.abs(want).max()

    def zero_qkv_bias(model):
        for block in model.layers.blocks:
            for proj in (block.self_attn.q_proj, block.self_attn.k_proj, block.self_attn.v_proj):
                proj.bias[...] = jnp.zeros_like(proj.bias[...])

    def unit_qk_norm(model):
        for block in model.layers.blocks:
            for norm in (block.self_attn.q_norm, block.self_attn.k_norm):
                norm.scale[...] = jnp.ones_like(norm.scale[...])

    def untie(model):  # a zero-initialised lm_head in place of the tied table, as a loader that forgot tying gives
        model.cfg = dataclasses.replace(model.cfg, tie_word_embeddings=False)
        model.lm_head = nnx.data(Dense(model.cfg.hidden_size, model.cfg.vocab_size, axes=('embed', 'vocab'),
                                       use_bias=False, kernel_init=nnx.initializers.zeros, rngs=nnx.Rngs(0)))

    assert drift(QWEN2, zero_qkv_bias) > 1e-2
    assert drift(QWEN3, unit_qk_norm) > 1e-2
    assert drift(QWEN3_B, unit_qk_norm) > 1e-2
    assert drift(QWEN2, untie) > 1e-2 and drift(QWEN3_B, untie) > 1e-2


@pytest.mark.parametrize('case,scan', [(QWEN2, False), (QWEN3, True), (QWEN3_B, False)])
def test_export_round_trip_with_merged_lora(case, scan, tmp_path):
    ref = reference(case)
    model = load_llm(fixture(case), scan=scan, lora=LoRAConfig(rank=4, alpha=8, dropout=0.0), lora_targets=ALL_TARGETS)
    rng = np.random.default_rng(0)  # non-zero B (and a perturbed A), as if trained
    nnx.update(model, jax.tree.map(lambda x: x + 0.05 * rng.standard_normal(x.shape, np.float32),
                                   nnx.state(model, nnx.LoRAParam)))
    want = logits(model, ref)
    real = ref['attention_mask'].astype(bool)
    assert np.abs(want[real] - ref['logits'][real]).max() > 1e-2  # the adapters do change the model

    out = tmp_path / 'exported'
    save_llm(model, out, max_shard_bytes=16 * 1024 if scan else 2 ** 30)
    reloaded = load_llm(out, scan=not scan)
    assert_parity(logits(reloaded, ref), want, rtol=1e-4)
    assert reloaded.cfg == model.cfg

    original, exported = HFCheckpoint(fixture(case)), HFCheckpoint(out)
    assert exported.names() == original.names()  # incl. q/k norms, biases, no lm_head when tied
    written = json.loads((out / 'config.json').read_text())
    source = config_json(case)
    for key in ('architectures', 'model_type', 'head_dim', 'tie_word_embeddings', 'num_key_value_heads',
                'rms_norm_eps', 'layer_types', 'use_sliding_window'):
        assert written[key] == source.get(key, written[key]), key  # a Qwen2 config may leave head_dim out
    assert written['rope_parameters'] == source['rope_parameters']


def test_sliding_window_shorter_than_the_input_is_refused(tmp_path):
    """The window of QWEN2_B (48) covers the fixture's inputs; a shorter one than the positions used is an error
    naming the key, and a window on no layer (max_window_layers >= layers) or switched off is no window."""
    model = loaded(QWEN2_B)
    ids = jnp.zeros((1, 49), jnp.int32)
    with pytest.raises(ValueError, match=r'use_sliding_window: true with sliding_window 48 on layers \[2\]'):
        model(ids)
    with pytest.raises(ValueError, match='sliding_window 48'):
        generate(model, np.ones((1, 40), np.int32), max_new_tokens=20)  # 40 + 20 positions > 48
    assert model(ids[:, :48]).shape == (1, 48, 80)
    cfg = config_json(QWEN2_B)
    assert llm_config_from_hf({**cfg, 'use_sliding_window': False}).sliding_window is None
    legacy = {k: v for k, v in cfg.items() if k != 'layer_types'}
    assert llm_config_from_hf({**legacy, 'max_window_layers': 3}).sliding_window is None
    assert llm_config_from_hf({**legacy, 'max_window_layers': 1}).sliding_layers == (1, 2)


@pytest.mark.parametrize('edit,match', [
    ({'model_type': 'mistral'}, r"model_type 'mistral' is not supported.*\['llama', 'qwen2', 'qwen3'\]"),
    ({'rope_scaling': {'type': 'longrope', 'factor': 2.0}}, "rope_type 'longrope' is not supported"),
    ({'rope_scaling': {'type': 'yarn'}}, r"yarn rope_scaling lacks \['factor'\]"),
    ({'hidden_act': 'gelu'}, "hidden_act 'gelu' is not supported"),
    ({'layer_types': ['full_attention']}, 'layer_types must list 3'),
    ({'partial_rotary_factor': 0.5}, 'partial_rotary_factor 0.5 is not supported'),
])
def test_configs_we_cannot_honour_name_the_key(edit, match, tmp_path):
    with pytest.raises(CheckpointError, match=match):
        llm_config_from_hf({**config_json(QWEN2_B), **edit})
    folder = tmp_path / 'ckpt'
    shutil.copytree(fixture(QWEN2_B), folder)
    (folder / 'config.json').write_text(json.dumps({**config_json(QWEN2_B), **edit}))
    with pytest.raises(CheckpointError, match=match):
        load_llm(folder)
