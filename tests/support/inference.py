"""A tiny prepared demo corpus and a random-weight parameter folder, shared by the inference tests.

Import the fixtures into a test module (``from tests.support.inference import corpus, params_dir``). Both are
built once per test session however many modules use them (the builders cache their results); tests
only read them (write your outputs under ``tmp_path``).
"""
from __future__ import annotations

import pytest

from tests.support.tiny import tiny_config

_CACHE: dict = {}


def tiny_corpus(tmp_path_factory):
    """(cfg, root): 5 demo clips in ROOT/raw, prepared with configs/emer.py:tiny into ROOT/prepared."""
    if 'corpus' not in _CACHE:
        from microemo_jax.data.records.build import prepare
        from microemo_jax.demo.corpus import write_corpus
        root = tmp_path_factory.mktemp('corpus')
        write_corpus(str(root / 'raw'), 5, seed=5, size=96, workers=1, progress=False)
        cfg = tiny_config(f'data.dir={root / "prepared"}')
        prepare(cfg, 'folder', str(root / 'raw'), str(root / 'prepared'), workers=1)
        _CACHE['corpus'] = cfg, root
    return _CACHE['corpus']


def tiny_params(corpus) -> str:
    """A parameter folder as train writes it (ROOT/params), with a random (untrained) model."""
    if 'params' not in _CACHE:
        from flax import nnx

        from microemo_jax.models.microemo import MicroEmo
        from microemo_jax.params import save_params, write_inference_files
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
