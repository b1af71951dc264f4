"""Parity of the JAX vision tower with transformers' Blip2VisionModel / InstructBlipVisionModel."""
import json
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from microemo_jax.hf.blip2_vision import load_blip2_vision, vision_config_from_hf
from microemo_jax.hf.safetensors_io import CheckpointError
from tests.support.parity import assert_parity, fixture, reference

CASES = ['blip2_vision_standalone', 'blip2_vision_full', 'instructblip_vision_full']


@pytest.mark.parametrize('name', CASES)
def test_parity(name):
    ref = reference(name)
    model = load_blip2_vision(fixture(name))
    assert_parity(model(ref['pixel_values']), ref['last_hidden_state'], rtol=1e-4)


@pytest.mark.parametrize('name', ['blip2_vision_full'])
def test_scan_equals_unrolled(name):
    ref = reference(name)
    unrolled = load_blip2_vision(fixture(name), scan=False)(ref['pixel_values'])
    scanned_model = load_blip2_vision(fixture(name), scan=True)
    assert scanned_model.encoder.blocks.self_attn.query.kernel.get_value().shape[0] == 2  # stacked 'layers' axis
    np.testing.assert_allclose(scanned_model(ref['pixel_values']), unrolled, rtol=1e-5, atol=1e-6)


def test_fixture_biases_are_visible():
    """q/v biases and the (dropped) key bias are non-zero, so parity really exercises their handling."""
    tensors = load_file(os.path.join(fixture('blip2_vision_standalone'), 'model.safetensors'))
    bias = tensors['encoder.layers.0.self_attn.qkv.bias'].reshape(3, -1)
    assert np.all(np.abs(bias).max(axis=1) > 1e-2)


def test_param_dtype_and_config():
    model = load_blip2_vision(fixture('blip2_vision_standalone'), param_dtype=jnp.bfloat16)
    assert model.encoder.blocks[0].self_attn.query.kernel.get_value().dtype == jnp.bfloat16
    cfg = model.cfg
    assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.image_size, cfg.patch_size) == (32, 2, 4, 28, 7)
    assert model.encoder.blocks[0].self_attn.key.bias is None


def test_config_rejects_non_square_size():
    with pytest.raises(CheckpointError, match='image_size'):
        vision_config_from_hf(dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=4, image_size=[28, 32], patch_size=7))


def _copy(tmp_path, name='blip2_vision_standalone'):
    dst = tmp_path / name
    shutil.copytree(fixture(name), dst)
    return dst


def _rewrite(ckpt_dir, edit):
    path = os.path.join(ckpt_dir, 'model.safetensors')
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


def test_wrong_model_type(tmp_path):
    (tmp_path / 'config.json').write_text(json.dumps({'model_type': 'llama', 'hidden_size': 32}))
    save_file({'model.embed_tokens.weight': np.zeros((4, 32), np.float32)}, str(tmp_path / 'model.safetensors'))
    with pytest.raises(CheckpointError, match=r"'llama'.*blip-2"):
        load_blip2_vision(tmp_path)


def test_missing_tensor(tmp_path):
    ckpt = _copy(tmp_path, 'blip2_vision_full')
    _rewrite(ckpt, lambda t: t.pop('vision_model.encoder.layers.1.mlp.fc2.bias'))
    with pytest.raises(CheckpointError, match=r"vision_model\.encoder\.layers\.1\.mlp\.fc2\.bias.*missing"):
        load_blip2_vision(ckpt)


def test_wrong_shape(tmp_path):
    ckpt = _copy(tmp_path)
    _rewrite(ckpt, lambda t: t.update({'embeddings.position_embedding': np.zeros((1, 10, 32), np.float32)}))
    with pytest.raises(CheckpointError, match=r"embeddings\.position_embedding.*\(1, 10, 32\)"):
        load_blip2_vision(ckpt)


def test_unused_tensor_is_an_error(tmp_path):
    """A checkpoint with more layers than its config says must not silently lose the extra layer."""
    ckpt = _copy(tmp_path)
    _rewrite(ckpt, lambda t: t.update({'encoder.layers.2.mlp.fc1.bias': np.zeros((64,), np.float32)}))
    with pytest.raises(CheckpointError, match=r"encoder\.layers\.2\.mlp\.fc1\.bias"):
        load_blip2_vision(ckpt)
