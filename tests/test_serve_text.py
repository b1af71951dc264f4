"""What the web page shows: names, not server paths; messages, not internals (no server is started here)."""
from __future__ import annotations

import re

import pytest

from microemo_jax.web.model_facts import model_markdown
from microemo_jax.web.upload import Limits, public_result, public_text
from tests.support.tiny import tiny_config

SERVER = '/srv/lab/alice/secret-project'
ABSOLUTE = re.compile(r'(?<![\w.:/])/(?:srv|tmp|home|root)\b')


def test_the_model_panel_names_folders_and_files_without_their_paths():
    info = {'source': 'folder', 'raw': f'{SERVER}/raw-160', 'data_dir': f'{SERVER}/prepared-1', 'splits': {'train': 3}}
    summary = {'path': f'{SERVER}/runs/evaluate/summary.json', 'split': 'validation',
               'scores': {'accuracy_s': 0.5, 'recall_s': 0.5, 'avg': 0.5, 'n': 2}}
    for s in (summary, None):
        text = model_markdown(f'{SERVER}/runs/stage2/params', tiny_config(), info, s, {'temperature': 0}, Limits())
        assert SERVER not in text and not ABSOLUTE.search(text), text
        assert '`params`' in text and '`raw-160`' in text and '`prepared-1`' in text
    assert 'summary.json' in model_markdown('params', tiny_config(), info, summary, {}, Limits())


@pytest.mark.parametrize('message, shown', [
    (f"cannot read {SERVER}/runs/stage2/params/tokenizers/llm/tokenizer.json: bad", 'cannot read tokenizer.json: bad'),
    ("Traceback (most recent call last):\n  File \"/usr/lib/x.py\", line 3\nKeyError: 'x'", ''),
    ("bad value <microemo_jax.inference.videos.Predictor object at 0x7f3a2b1c> here", 'bad value <object> here'),
    ("see http://127.0.0.1:7860/x and runs/demo", 'see http://127.0.0.1:7860/x and runs/demo'),
    ("C:\\Users\\bob\\clip.mp4 is too long", 'clip.mp4 is too long'),
    ("~/videos/clip.mp4 is too long", 'clip.mp4 is too long'),
])
def test_messages_lose_paths_tracebacks_and_reprs(message, shown):
    assert public_text(message) == shown


def test_the_api_json_names_its_files():
    result = {'name': 'clip', 'video': f'{SERVER}/up/clip.mp4', 'timeline': f'{SERVER}/req-1/clip.timeline.png',
              'params': f'{SERVER}/params', 'labels': ['happy']}
    assert public_result(result) == {'name': 'clip', 'video': 'clip.mp4', 'timeline': 'clip.timeline.png',
                                     'params': 'params', 'labels': ['happy']}
