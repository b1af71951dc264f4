"""Parity of the Q-Former loader against transformers' Blip2QFormerModel / InstructBlipQFormerModel."""
from __future__ import annotations

import json
import os
import re
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from microemo_jax.hf.qformer import load_qformer, load_query_tokens, qformer_config_from_hf
from microemo_jax.hf.safetensors_io import CheckpointError
from tests.support.parity import assert_parity, fixture, reference

CASES = ('qformer_blip2_standalone', 'qformer_instructblip_standalone', 'qformer_instructblip_full')


def _run(model, ref, *, masked=False, text=True):
    query = ref['query_tokens'] if 'query_tokens' in ref else ref['query_embeds']
    ids = ref.get('input_ids') if text else None
    mask = ref.get('attention_mask') if text else None
    return model(jnp.asarray(query), jnp.asarray(ref['encoder_hidden_states']),
                 None if ids is None else jnp.asarray(ids), None if mask is None else jnp.asarray(mask),
                 encoder_attention_mask=jnp.asarray(ref['encoder_attention_mask']) if masked else None)


def _rewrite(src: str, dst: str, *, config=None, tensors=None) -> str:
    """Copy checkpoint ``src`` to ``dst``, optionally replacing config.json and/or the tensor dict."""
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(src, 'config.json')) as f:
        cfg = json.load(f)
    arrays = load_file(os.path.join(src, 'model.safetensors'))
    cfg = config(cfg) if config else cfg
    arrays = tensors(arrays) if tensors else arrays
    with open(os.path.join(dst, 'config.json'), 'w') as f:
        json.dump(cfg, f)
    save_file(arrays, os.path.join(dst, 'model.safetensors'))
    shutil.copy(os.path.join(src, 'reference.npz'), dst)
    return dst


@pytest.mark.parametrize('name', CASES)
def test_parity(name):
    ref = reference(name)
    model = load_qformer(fixture(name))
    assert_parity(_run(model, ref), ref['last_hidden_state'])
    assert_parity(_run(model, ref, masked=True), ref['last_hidden_state_masked'])


def test_instructblip_without_text_matches_query_only_run():
    ref = reference('qformer_instructblip_standalone')
    out = _run(load_qformer(fixture('qformer_instructblip_standalone')), ref, text=False)
    assert_parity(out, ref['last_hidden_state_no_text'])


def test_config_layouts():
    with open(os.path.join(fixture('qformer_blip2_standalone'), 'config.json')) as f:
        blip2 = qformer_config_from_hf(json.load(f))
    assert (blip2.vocab_size, blip2.text_ffn, blip2.num_layers, blip2.encoder_hidden_size) == (0, False, 3, 24)
    with open(os.path.join(fixture('qformer_instructblip_full'), 'config.json')) as f:
        full = json.load(f)
    cfg = qformer_config_from_hf(full)
    assert (cfg.vocab_size, cfg.text_ffn, cfg.num_layers, cfg.layer_norm_eps) == (99, True, 2, 1e-6)
    full['vision_config']['hidden_size'] = 40  # transformers takes the cross-attention width from the vision tower
    assert qformer_config_from_hf(full).encoder_hidden_size == 40


def test_query_tokens():
    ref = reference('qformer_instructblip_full')
    tokens = load_query_tokens(fixture('qformer_instructblip_full'))
    assert tokens.shape == (1, 6, 32) and tokens.dtype == np.float32
    np.testing.assert_array_equal(tokens, ref['query_tokens'])
    with pytest.raises(CheckpointError, match='standalone .* holds no query_tokens'):
        load_query_tokens(fixture('qformer_instructblip_standalone'))


def test_blip2_full_checkpoint(tmp_path):
    """A whole 'blip-2' model: the Q-Former under 'qformer.' and query_tokens beside it."""
    ref = reference('qformer_blip2_standalone')
    tokens = np.random.default_rng(0).normal(size=(1, 6, 32)).astype(np.float32)

    def config(cfg):
        return {'model_type': 'blip-2', 'num_query_tokens': 6, 'vision_config': {'hidden_size': 24},
                'qformer_config': {k: v for k, v in cfg.items() if k != 'architectures'}}

    def tensors(arrays):
        return {'query_tokens': tokens, 'language_projection.weight': np.zeros((4, 32), np.float32),
                **{'qformer.' + k: v for k, v in arrays.items()}}

    path = _rewrite(fixture('qformer_blip2_standalone'), str(tmp_path / 'full'), config=config, tensors=tensors)
    assert_parity(_run(load_qformer(path), ref), ref['last_hidden_state'])
    np.testing.assert_array_equal(load_query_tokens(path), tokens)


def test_blip2_text_ffn_tensors_present_or_absent(tmp_path):
    ref = reference('qformer_blip2_standalone')
    rng = np.random.default_rng(1)

    def add_text_ffn(arrays):
        out = dict(arrays)
        for i in range(3):
            p = f'encoder.layer.{i}.'
            out[p + 'intermediate.dense.weight'] = rng.normal(size=(48, 32)).astype(np.float32)
            out[p + 'intermediate.dense.bias'] = rng.normal(size=(48,)).astype(np.float32)
            out[p + 'output.dense.weight'] = rng.normal(size=(32, 48)).astype(np.float32)
            out[p + 'output.dense.bias'] = rng.normal(size=(32,)).astype(np.float32)
            out[p + 'output.LayerNorm.weight'] = rng.normal(size=(32,)).astype(np.float32)
            out[p + 'output.LayerNorm.bias'] = rng.normal(size=(32,)).astype(np.float32)
        return out

    # present but not asked for by the config: unused by transformers, skipped here
    path = _rewrite(fixture('qformer_blip2_standalone'), str(tmp_path / 'extra'), tensors=add_text_ffn)
    model = load_qformer(path)
    assert model.layers[0].ffn_text is None
    assert_parity(_run(model, ref), ref['last_hidden_state'])
    # ... or loaded on request
    model = load_qformer(path, text_ffn=True)
    np.testing.assert_allclose(np.asarray(model.layers[1].ffn_text.output.kernel[...]),
                               load_file(os.path.join(path, 'model.safetensors'))['encoder.layer.1.output.dense.weight'].T)
    assert_parity(_run(model, ref), ref['last_hidden_state'])
    # asked for by the config but absent
    path = _rewrite(fixture('qformer_blip2_standalone'), str(tmp_path / 'flag'),
                    config=lambda c: {**c, 'use_qformer_text_input': True})
    with pytest.raises(CheckpointError, match=r"'encoder\.layer\.0\.intermediate\.dense\.weight' is missing"):
        load_qformer(path)


def test_wrong_kind(tmp_path):
    path = _rewrite(fixture('qformer_blip2_standalone'), str(tmp_path / 'llama'),
                    config=lambda c: {**c, 'model_type': 'llama'})
    with pytest.raises(CheckpointError, match="model_type 'llama'.*blip_2_qformer"):
        load_qformer(path)
    with pytest.raises(CheckpointError, match="model_type 'llama'"):
        load_query_tokens(path)


def test_missing_tensor(tmp_path):
    name = 'qformer.encoder.layer.0.crossattention.attention.key.weight'
    path = _rewrite(fixture('qformer_instructblip_full'), str(tmp_path / 'missing'),
                    tensors=lambda arrays: {k: v for k, v in arrays.items() if k != name})
    with pytest.raises(CheckpointError, match=re.escape(repr(name)) + ' is missing'):
        load_qformer(path)


def test_wrong_shape(tmp_path):
    name = 'embeddings.word_embeddings.weight'

    def shrink(arrays):
        return {**arrays, name: arrays[name][:50]}

    path = _rewrite(fixture('qformer_instructblip_standalone'), str(tmp_path / 'shape'), tensors=shrink)
    with pytest.raises(CheckpointError, match=r"'embeddings\.word_embeddings\.weight' has shape \(50, 32\), "
                                              r"expected \(99, 32\)"):
        load_qformer(path)


def test_tensors_the_config_does_not_explain(tmp_path):
    path = _rewrite(fixture('qformer_blip2_standalone'), str(tmp_path / 'layers'),
                    config=lambda c: {**c, 'num_hidden_layers': 2})
    with pytest.raises(CheckpointError, match=r"not explained by config.json.*'encoder\.layer\.2\."):
        load_qformer(path)
