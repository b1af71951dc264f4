"""Whisper encoder loaded from HF checkpoints vs transformers' recorded outputs, loader errors, log-mel features."""
from __future__ import annotations

import json
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

from microemo_jax.data.speech.log_mel import log_mel_spectrogram
from microemo_jax.hf.safetensors_io import CheckpointError
from microemo_jax.hf.whisper import load_whisper_encoder, whisper_encoder_config_from_hf
from tests.support.parity import assert_parity, fixture, reference

CASES = ('whisper_encoder_standalone', 'whisper_model_full', 'whisper_cond_gen_full')


@nnx.jit
def _encode(model, x):
    """Jitted forward (one compile per case beats eager op-by-op dispatch)."""
    return model(x)


@pytest.mark.parametrize('case', CASES)
def test_parity_with_transformers(case):
    ref = reference(case)
    model = load_whisper_encoder(fixture(case))
    assert_parity(_encode(model, ref['input_features']), ref['last_hidden_state'], rtol=1e-4)


def test_short_input_uses_first_positions():
    ref = reference('whisper_encoder_standalone')
    model = load_whisper_encoder(fixture('whisper_encoder_standalone'))
    assert ref['short_input_features'].shape[-1] < 2 * model.cfg.max_source_positions
    assert_parity(_encode(model, ref['short_input_features']), ref['short_last_hidden_state'], rtol=1e-4)


def test_scan_equals_unrolled():
    ref = reference('whisper_cond_gen_full')
    unrolled = load_whisper_encoder(fixture('whisper_cond_gen_full'))
    scanned = load_whisper_encoder(fixture('whisper_cond_gen_full'), scan=True)
    assert scanned.layers.blocks.fc1.kernel.get_metadata()['axes'] == ('layers', 'embed', 'mlp')
    y_scan = _encode(scanned, ref['input_features'])
    np.testing.assert_allclose(y_scan, _encode(unrolled, ref['input_features']), rtol=1e-5, atol=1e-5)
    assert_parity(y_scan, ref['last_hidden_state'], rtol=1e-4)


def test_config_from_hf_and_param_dtype():
    with open(os.path.join(fixture('whisper_cond_gen_full'), 'config.json')) as f:
        cfg = whisper_encoder_config_from_hf(json.load(f))
    assert (cfg.num_mel_bins, cfg.d_model, cfg.encoder_layers, cfg.encoder_attention_heads, cfg.encoder_ffn_dim,
            cfg.max_source_positions, cfg.activation_function) == (16, 32, 2, 4, 64, 32, 'gelu_new')
    model = load_whisper_encoder(fixture('whisper_cond_gen_full'), param_dtype=jnp.bfloat16)
    assert model.layers.blocks[0].self_attn.q_proj.kernel[...].dtype == jnp.bfloat16


def _edited_copy(tmp_path, case, *, config=None, tensors=None):
    """A copy of fixture ``case`` with config.json and/or the tensor dict changed by the given functions."""
    src, dst = fixture(case), str(tmp_path / case)
    shutil.copytree(src, dst)
    if config is not None:
        with open(os.path.join(dst, 'config.json')) as f:
            cfg = json.load(f)
        config(cfg)
        with open(os.path.join(dst, 'config.json'), 'w') as f:
            json.dump(cfg, f)
    if tensors is not None:
        arrays = load_file(os.path.join(src, 'model.safetensors'))
        tensors(arrays)
        save_file(arrays, os.path.join(dst, 'model.safetensors'))
    return dst


def test_wrong_model_type(tmp_path):
    path = _edited_copy(tmp_path, 'whisper_model_full', config=lambda c: c.update(model_type='wav2vec2'))
    with pytest.raises(CheckpointError, match=r"model_type 'wav2vec2'.*whisper"):
        load_whisper_encoder(path)


def test_no_encoder_tensors(tmp_path):
    def drop_encoder(arrays):
        for k in [k for k in arrays if k.startswith('encoder.')]:
            del arrays[k]
    path = _edited_copy(tmp_path, 'whisper_model_full', tensors=drop_encoder)
    with pytest.raises(CheckpointError, match=r"no Whisper encoder tensors.*conv1\.weight"):
        load_whisper_encoder(path)


def test_missing_tensor(tmp_path):
    path = _edited_copy(tmp_path, 'whisper_model_full', tensors=lambda a: a.pop('encoder.layers.1.fc2.weight'))
    with pytest.raises(CheckpointError, match=r"'encoder\.layers\.1\.fc2\.weight' is missing"):
        load_whisper_encoder(path)


def test_wrong_shape(tmp_path):
    name = 'model.encoder.layers.0.self_attn.k_proj.weight'
    path = _edited_copy(tmp_path, 'whisper_cond_gen_full',
                        tensors=lambda a: a.update({name: np.zeros((32, 16), np.float32)}))
    with pytest.raises(CheckpointError, match=rf"'{name}' has shape \(32, 16\), expected \(32, 32\)"):
        load_whisper_encoder(path)


def test_unexpected_encoder_tensor(tmp_path):
    path = _edited_copy(tmp_path, 'whisper_encoder_standalone',
                        tensors=lambda a: a.update({'layers.2.fc1.bias': np.zeros((64,), np.float32)}))
    with pytest.raises(CheckpointError, match=r"layers\.2\.fc1\.bias"):
        load_whisper_encoder(path)


@pytest.mark.parametrize('bins', [80, 128])
def test_log_mel_matches_feature_extractor(bins):
    ref = reference('whisper_features')
    features = log_mel_spectrogram(ref['waveform'], bins)
    np.testing.assert_allclose(features, ref[f'log_mel_{bins}'], rtol=0, atol=1e-4)
    batched = log_mel_spectrogram(np.stack([ref['waveform'], ref['waveform'][::-1]]), bins)
    assert batched.shape == (2,) + ref[f'log_mel_{bins}'].shape
    np.testing.assert_array_equal(batched[0], features)
