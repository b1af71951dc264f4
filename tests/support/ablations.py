"""One tiny ablation run, shared by the runner's test and the notebook's (built once per session).

``tools/ablations.py`` trains the full model of ``configs/emer.py:tiny`` (given as overrides of the demo config,
so the compiled programs are the ones tests/test_train.py compiled) on the tiny prepared corpus, and scores
it as is and with faces shuffled. Tests read the folder; a run with the same settings resumes it.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.inference import tiny_corpus
from tests.support.tiny import as_demo_overrides

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARIANTS = 'full,shuffled_faces'
NEW_TOKENS = 4
_CACHE: dict = {}


def overrides(root) -> list[str]:
    # no validation passes and one checkpoint per stage: an eval program and two saves fewer per stage, none of
    # which these tests read
    return as_demo_overrides(f'data.dir={root / "prepared"}', 'train.validate_every=0', 'checkpoint_every=4')


def command(out, root) -> list[str]:
    args = [sys.executable, 'tools/ablations.py', '--out', str(out), '--variants', VARIANTS,
            '--max-new-tokens', str(NEW_TOKENS), '--batch-size', '2']
    return args + [a for o in overrides(root) for a in ('--override', o)]


def env() -> dict:
    return {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': REPO}


@pytest.fixture(scope='session')
def tiny_ablation(tmp_path_factory):
    """(out folder, corpus root, the finished first run's CompletedProcess)."""
    if 'run' not in _CACHE:
        _, root = tiny_corpus(tmp_path_factory)
        out = tmp_path_factory.mktemp('ablations') / 'abl'
        done = subprocess.run(command(out, root), cwd=REPO, env=env(), capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        _CACHE['run'] = out, root, done
    return _CACHE['run']
