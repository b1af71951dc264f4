"""The one model config of the tests that compile MicroEmo end to end: ``configs/emer.py:tiny``.

Every compiled program is keyed by the model's structure and shapes, so tests that train, evaluate, serve
or run the notebook on the same tiny config compile each program once per suite (later tests, and the
subprocesses they start, hit the persistent compile cache). Override only what a test is about.
"""
from __future__ import annotations

from microemo_jax.config import load_config

CONFIG = 'configs/emer.py:tiny'


def tiny_config(*overrides):
    return load_config(CONFIG, list(overrides))


def config_args(*overrides) -> list[str]:
    """``--config configs/emer.py:tiny --config.KEY=VALUE ...`` for an entry point's command line."""
    return ['--config', CONFIG] + [f'--config.{o}' for o in overrides]


def as_demo_overrides(*overrides) -> list[str]:
    """The tiny config as overrides of ``configs/emer.py:demo``, for code that loads the demo config itself
    (the ablation notebook's MICROEMO_OVERRIDES): the same model, so the same compiled programs."""
    def flat(d, prefix=''):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f'{prefix}{k}.')
            else:
                yield f'{prefix}{k}', v
    demo = dict(flat(load_config('configs/emer.py:demo').to_dict()))
    tiny = dict(flat(tiny_config().to_dict()))
    return [f'{k}={v}' for k, v in tiny.items() if k != 'variant' and demo[k] != v] + list(overrides)
