"""LLaMA loaded from transformers checkpoints vs transformers' recorded logits; export round trip; errors."""
from __future__ import annotations

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

from microemo_jax.hf.llama import export_llama, llama_config_from_hf, load_llama
from microemo_jax.hf.safetensors_io import CheckpointError, HFCheckpoint
from microemo_jax.models.lora import LoRAConfig
from tests.support.parity import assert_parity, fixture, reference

CASES = ('llama_gqa_untied_llama3rope', 'llama_tied_sharded')
ARCH_KEYS = ('architectures', 'model_type', 'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers',
             'num_attention_heads', 'num_key_value_heads', 'head_dim', 'hidden_act', 'max_position_embeddings',
             'rms_norm_eps', 'tie_word_embeddings', 'attention_bias', 'mlp_bias')


@nnx.jit
def forward(model, ids, mask):
    return model(ids, attention_mask=mask)


def _logits(model, ref):
    return np.asarray(forward(model, jnp.asarray(ref['input_ids'], jnp.int32),
                              jnp.asarray(ref['attention_mask'], jnp.int32)))


def _config(case):
    with open(os.path.join(fixture(case), 'config.json')) as f:
        return json.load(f)


@pytest.mark.parametrize('case', CASES)
def test_parity_with_transformers_scan_and_unrolled(case):
    ref = reference(case)
    real = ref['attention_mask'].astype(bool)
    assert not real.all()  # the second row is left-padded
    # transformers was given these positions explicitly; they are also our default
    np.testing.assert_array_equal(ref['position_ids'], np.maximum(np.cumsum(real, -1) - 1, 0))
    unrolled = _logits(load_llama(fixture(case), scan=False), ref)
    scanned = _logits(load_llama(fixture(case), scan=True), ref)
    assert_parity(unrolled[real], ref['logits'][real], rtol=1e-4)
    np.testing.assert_allclose(scanned, unrolled, rtol=0, atol=1e-5 * np.abs(unrolled).max())


def test_config_spellings():
    old = _config('llama_gqa_untied_llama3rope')
    assert 'rope_scaling' in old and 'rope_parameters' not in old
    cfg = llama_config_from_hf(old)
    assert cfg.rope_params == {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
                               'original_max_position_embeddings': 64}
    assert (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.hidden_size) == (4, 2, 16, 48)
    assert not cfg.tie_word_embeddings and cfg.attention_bias
    new = {k: v for k, v in old.items() if k not in ('rope_scaling', 'rope_theta')}
    new['rope_parameters'] = {**old['rope_scaling'], 'rope_theta': old['rope_theta']}
    assert llama_config_from_hf(new) == cfg
    tied = llama_config_from_hf(_config('llama_tied_sharded'))
    assert tied.rope_scaling is None and tied.tie_word_embeddings and tied.rope_theta == 10000.0
    # a Llama-2 style config: no rope_theta, rope_scaling null, no num_key_value_heads
    legacy = {k: v for k, v in _config('llama_tied_sharded').items()
              if k not in ('rope_parameters', 'num_key_value_heads', 'head_dim')}
    legacy['rope_scaling'] = None
    assert llama_config_from_hf(legacy) == tied
    with pytest.raises(CheckpointError, match="rope_type 'longrope' is not supported"):
        llama_config_from_hf({**old, 'rope_scaling': {'rope_type': 'longrope', 'factor': 4.0}})
    with pytest.raises(CheckpointError, match="lacks 'hidden_size'"):
        llama_config_from_hf({k: v for k, v in old.items() if k != 'hidden_size'})


@pytest.mark.parametrize('case,scan', [('llama_gqa_untied_llama3rope', False), ('llama_tied_sharded', True)])
def test_export_round_trip_with_merged_lora(case, scan, tmp_path):
    ref = reference(case)
    targets = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj')
    model = load_llama(fixture(case), scan=scan, lora=LoRAConfig(rank=4, alpha=8, dropout=0.0), lora_targets=targets)
    rng = np.random.default_rng(0)  # non-zero B (and a perturbed A), as if trained
    nnx.update(model, jax.tree.map(lambda x: x + 0.05 * rng.standard_normal(x.shape, np.float32),
                                   nnx.state(model, nnx.LoRAParam)))
    want = _logits(model, ref)
    real = ref['attention_mask'].astype(bool)
    assert np.abs(want[real] - ref['logits'][real]).max() > 1e-2  # the adapters do change the model

    out = tmp_path / 'exported'
    export_llama(model, out, max_shard_bytes=64 * 1024 if scan else 2 ** 30)
    assert os.path.isfile(out / ('model.safetensors.index.json' if scan else 'model.safetensors'))
    n_arrays = 2 * len(targets) * (1 if scan else model.cfg.num_layers)  # scanned layers share stacked arrays
    assert len(jax.tree.leaves(nnx.state(model, nnx.LoRAParam))) == n_arrays
    np.testing.assert_array_equal(_logits(model, ref), want)  # the caller's module is untouched

    reloaded = load_llama(out, scan=not scan)
    assert_parity(_logits(reloaded, ref), want, rtol=1e-4)

    original, exported = HFCheckpoint(fixture(case)), HFCheckpoint(out)
    assert exported.names() == original.names()
    for name in original.names():
        assert exported.get(name).shape == original.get(name).shape, name
    cfg_in, cfg_out = _config(case), json.loads((out / 'config.json').read_text())
    for key in ARCH_KEYS:
        assert cfg_out[key] == cfg_in[key], key
    assert llama_config_from_hf(cfg_out) == llama_config_from_hf(cfg_in)


def _copy(case, tmp_path):
    dst = tmp_path / case
    shutil.copytree(fixture(case), dst)
    return dst


def test_wrong_kind_of_checkpoint(tmp_path):
    path = _copy('llama_gqa_untied_llama3rope', tmp_path)
    (path / 'config.json').write_text(json.dumps({'model_type': 'whisper', 'd_model': 48}))
    with pytest.raises(CheckpointError, match=r"model_type 'whisper'.*\['llama'\]"):
        load_llama(path)
    with pytest.raises(CheckpointError, match='not a directory'):
        load_llama(tmp_path / 'nothing_here')


def _rewrite(path, edit):
    tensors = load_file(path / 'model.safetensors')
    edit(tensors)
    save_file(tensors, path / 'model.safetensors', metadata={'format': 'pt'})


def test_missing_tensor_is_named(tmp_path):
    path = _copy('llama_gqa_untied_llama3rope', tmp_path)
    _rewrite(path, lambda t: t.pop('model.layers.1.mlp.up_proj.weight'))
    with pytest.raises(CheckpointError, match=r"'model\.layers\.1\.mlp\.up_proj\.weight' is missing"):
        load_llama(path, scan=True)


def test_wrong_shape_is_named(tmp_path):
    path = _copy('llama_gqa_untied_llama3rope', tmp_path)
    _rewrite(path, lambda t: t.update({'model.layers.0.self_attn.k_proj.weight':
                                       t['model.layers.0.self_attn.k_proj.weight'][:16]}))
    with pytest.raises(CheckpointError, match=r"'model\.layers\.0\.self_attn\.k_proj\.weight' has shape \(16, 48\), "
                                              r"expected \(32, 48\)"):
        load_llama(path)


def test_unexpected_tensor_is_named(tmp_path):
    path = _copy('llama_gqa_untied_llama3rope', tmp_path)
    _rewrite(path, lambda t: t.update({'model.layers.2.mlp.up_proj.weight': t['model.layers.1.mlp.up_proj.weight']}))
    with pytest.raises(CheckpointError, match=r"not used by a 2-layer.*model\.layers\.2\.mlp\.up_proj\.weight"):
        load_llama(path)
