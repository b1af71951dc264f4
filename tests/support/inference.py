"""A tiny prepared demo corpus and a random-weight parameter folder, shared by the inference tests.

Import the fixtures into a test module (``from tests.support.inference import corpus, params_dir``). Both are
built once per test session however many modules use them (the builders cache their results); tests
only read them (write your outputs under ``tmp_path``).
"""
from __future__ import annotations

import pytest

from microemo_jax.config import load_config

TINY = ['model.vision.image_size=32', 'model.vision.patch_size=16', 'model.num_frames=4',
        'model.micro_expression.num_crops=2', 'model.max_utterances=2', 'model.audio.max_source_positions=24',
        'model.image_qformer.num_query_tokens=4', 'model.video_qformer.num_query_tokens=4',
        'model.audio_qformer.num_query_tokens=2', 'model.frame_encoder.max_timestamp_tokens=16',
        'model.llm.vocab_size=320', 'model.llm.hidden_size=64', 'model.llm.intermediate_size=96',
        'model.llm.num_heads=4', 'model.llm.num_kv_heads=2', 'model.llm.head_dim=16', 'model.llm.num_layers=1',
        'model.llm.max_position_embeddings=704', 'data.max_seq_len=640', 'data.max_mel_frames=48',
        'data.validation_fraction=0.4']

_CACHE: dict = {}


def tiny_corpus(tmp_path_factory):
    """(cfg, root): 5 demo clips in ROOT/raw, prepared with the tiny config into ROOT/prepared."""
    if 'corpus' not in _CACHE:
        from microemo_jax.demo.corpus import write_corpus
        from microemo_jax.prepare import prepare
        root = tmp_path_factory.mktemp('corpus')
        write_corpus(str(root / 'raw'), 5, seed=5, size=96, workers=1, progress=False)
        cfg = load_config('configs/emer.py:demo', TINY + [f'data.dir={root / "prepared"}'])
        prepare(cfg, 'folder', str(root / 'raw'), str(root / 'prepared'), workers=1)
        _CACHE['corpus'] = cfg, root
    return _CACHE['corpus']


def tiny_params(corpus) -> str:
    """A parameter folder as train writes it (ROOT/params), with a random (untrained) model."""
    if 'params' not in _CACHE:
        from flax import nnx

        from microemo_jax.params import save_params
        from microemo_jax.models.microemo import MicroEmo
        from microemo_jax.params import write_inference_files
        cfg, root = corpus
        path = str(root / 'params')
        save_params(path, MicroEmo(cfg.model, rngs=nnx.Rngs(0)), cfg.model)
        write_inference_files(path, cfg, str(root / 'prepared'))
        _CACHE['params'] = path
    return _CACHE['params']


@pytest.fixture(scope='session')
def corpus(tmp_path_factory):
    return tiny_corpus(tmp_path_factory)


@pytest.fixture(scope='session')
def params_dir(corpus):
    return tiny_params(corpus)
