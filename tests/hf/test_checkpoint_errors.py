"""Damaged or unusual Hugging Face folders: one CheckpointError naming the file (and the tensor), from the
reader, the loaders and `convert`; float8 tensors read through ml_dtypes; complex tensors refused."""
from __future__ import annotations

import json
import os
import shutil

import ml_dtypes
import numpy as np
import pytest

from microemo_jax.convert import main as convert_main
from microemo_jax.hf.llama import load_llama
from microemo_jax.hf.safetensors_io import CheckpointError, HFCheckpoint
from tests.support.parity import fixture

SINGLE = 'llama_gqa_untied_llama3rope'   # config.json + model.safetensors
SHARDED = 'llama_tied_sharded'           # three shards + model.safetensors.index.json
# convert's config fields that describe the sharded fixture (as in tests/test_convert.py)
LLAMA_MATCHING = ['model.llm.vocab_size=128', 'model.llm.hidden_size=32', 'model.llm.intermediate_size=64',
                  'model.llm.num_heads=4', 'model.llm.num_kv_heads=4', 'model.llm.head_dim=8',
                  'model.llm.rms_norm_eps=1e-6', 'model.llm.max_position_embeddings=64',
                  'model.llm.tie_word_embeddings=true']


def write_safetensors(file, tensors: dict) -> None:
    """A safetensors file written by hand: {name: (dtype name, shape, raw bytes)}."""
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {'dtype': dtype, 'shape': list(shape), 'data_offsets': [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b' ' * (-len(text) % 8)
    with open(file, 'wb') as f:
        f.write(len(text).to_bytes(8, 'little') + text + b''.join(blobs))


def _split(file):
    with open(file, 'rb') as f:
        data = f.read()
    n = int.from_bytes(data[:8], 'little')
    return json.loads(data[8:8 + n]), data[8 + n:]


def _rewrite_header(file, edit) -> None:
    header, body = _split(file)
    edit(header)
    text = json.dumps(header).encode()
    text += b' ' * (-len(text) % 8)
    with open(file, 'wb') as f:
        f.write(len(text).to_bytes(8, 'little') + text + body)


def _first_shard(folder):
    return os.path.join(folder, sorted(f for f in os.listdir(folder) if f.endswith('.safetensors'))[0])


def _damage(folder, kind) -> str:
    """Damage a copied fixture folder; returns the file the error must name."""
    shard = _first_shard(folder)
    if kind == 'header_not_json':
        with open(shard, 'r+b') as f:
            f.seek(8)
            f.write(b'{"name": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, \x00\xff\xfe')
        return shard
    if kind == 'huge_header_length':
        with open(shard, 'r+b') as f:
            f.write((2 ** 62).to_bytes(8, 'little'))
        return shard
    if kind == 'truncated':
        size = os.path.getsize(shard)
        with open(shard, 'r+b') as f:
            f.truncate(size - 100)
        return shard
    if kind == 'config_not_json':
        with open(os.path.join(folder, 'config.json'), 'w') as f:
            f.write('{"model_type": "llama",')
        return os.path.join(folder, 'config.json')
    if kind == 'config_not_object':
        with open(os.path.join(folder, 'config.json'), 'w') as f:
            f.write('["llama"]')
        return os.path.join(folder, 'config.json')
    if kind == 'complex_tensor':
        def edit(header):
            for name, meta in header.items():
                if name != '__metadata__' and meta['dtype'] == 'F32':
                    meta['dtype'] = 'C64'  # same bytes, read as complex64: half as many elements
                    meta['shape'] = [int(np.prod(meta['shape'])) // 2]
        _rewrite_header(shard, edit)
        return shard
    if kind == 'unknown_dtype':
        _rewrite_header(shard, lambda h: [m.update(dtype='F4') for k, m in h.items() if k != '__metadata__'])
        return shard
    raise ValueError(kind)


KINDS = {  # what the one error must say, besides the file's name
    'header_not_json': 'malformed safetensors header',
    'huge_header_length': 'header claims 4611686018427387904 bytes',
    'truncated': r"tensor '.+': its bytes end at \d+ but the file holds only",
    'config_not_json': 'config.json is not valid JSON',
    'config_not_object': 'config.json is a JSON list, expected an object',
    'complex_tensor': r"tensor '.+' is complex \(C64\).*imaginary part would be lost",
    'unknown_dtype': r"tensor '.+' has dtype 'F4', which this loader does not read",
}


@pytest.fixture(scope='module')
def damaged(tmp_path_factory):
    """{kind: (damaged copy of the sharded fixture, file to be named)}."""
    root = tmp_path_factory.mktemp('damaged')
    out = {}
    for kind in KINDS:
        folder = str(root / kind)
        shutil.copytree(fixture(SHARDED), folder)
        out[kind] = folder, _damage(folder, kind)
    return out


@pytest.mark.parametrize('kind', list(KINDS))
def test_loader_and_convert_give_one_clear_error(damaged, kind, tmp_path):
    import re
    folder, file = damaged[kind]
    expected = re.escape(file) + '.*' + KINDS[kind]
    with pytest.raises(CheckpointError, match=expected):
        load_llama(folder)
    args = ['--config', 'configs/emer.py:demo', '--out', str(tmp_path / 'out'), '--llama', folder]
    with pytest.raises(SystemExit) as e:
        convert_main(args + [f'--config.{o}' for o in LLAMA_MATCHING])
    assert isinstance(e.value.code, str) and re.match('error: ' + expected, e.value.code, re.S), e.value.code
    assert not os.path.exists(tmp_path / 'out')                             # nothing half-written


def test_float8_and_bfloat16_tensors_are_read_through_ml_dtypes(tmp_path):
    values = np.array([[0.5, -1.25], [3.0, 448.0]], np.float32)
    tensors = {}
    for dtype, np_dtype in [('F8_E4M3', ml_dtypes.float8_e4m3fn), ('F8_E5M2', ml_dtypes.float8_e5m2),
                            ('BF16', ml_dtypes.bfloat16), ('F16', np.float16), ('I64', np.int64)]:
        tensors[f'w.{dtype}'] = (dtype, values.shape, values.astype(np_dtype).tobytes())
    write_safetensors(tmp_path / 'model.safetensors', tensors)
    (tmp_path / 'config.json').write_text('{"model_type": "llama"}')
    ckpt = HFCheckpoint(tmp_path)
    for name in ('w.F8_E4M3', 'w.BF16', 'w.F16'):
        got = ckpt.get(name, (2, 2))
        assert got.dtype in (np.float32, np.float16), name
        np.testing.assert_array_equal(got, values, err_msg=name)          # exactly representable values
    e5m2 = ckpt.get('w.F8_E5M2')
    assert e5m2.dtype == np.float32
    np.testing.assert_array_equal(e5m2, values.astype(ml_dtypes.float8_e5m2).astype(np.float32))
    assert ckpt.get('w.I64').dtype == np.int64
    # an index pointing at a file outside the folder is refused
    (tmp_path / 'model.safetensors.index.json').write_text(json.dumps({'weight_map': {'w': '../model.safetensors'}}))
    with pytest.raises(CheckpointError, match='not a plain file name'):
        HFCheckpoint(tmp_path)


def test_single_file_checkpoint_with_a_bad_header_names_the_file(tmp_path):
    folder = str(tmp_path / 'single')
    shutil.copytree(fixture(SINGLE), folder)
    with open(os.path.join(folder, 'model.safetensors'), 'r+b') as f:
        f.seek(8)
        f.write(b'[1, 2, 3]' + b' ' * 10)
    with pytest.raises(CheckpointError, match=r'model\.safetensors: malformed safetensors header'):
        HFCheckpoint(folder)
