"""A tokenizer folder never chooses code to run: an ``auto_map`` is refused by name, even with 'y' on stdin."""
from __future__ import annotations

import ast
import io
import json
import pathlib
import shutil

import pytest

from microemo_jax.data.demo_tokenizers import train_demo_tokenizers
from microemo_jax.data.speech import asr
from microemo_jax.data.tokenizers import load_tokenizer

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / 'microemo_jax'
WHISPER = pathlib.Path(__file__).resolve().parents[1] / 'fixtures' / 'hf' / 'whisper_asr'
PLANTED = """import pathlib
pathlib.Path({marker!r}).write_text('ran')
from transformers import PreTrainedTokenizerFast
class PlantedTokenizer(PreTrainedTokenizerFast):
    pass
"""


def plant(folder: pathlib.Path, marker: pathlib.Path, file: str) -> None:
    """A module beside the tokenizer, and ``file`` naming it in an ``auto_map`` (what the Hub calls custom code)."""
    module = f'planted_{file.split(".")[0]}'
    (folder / f'{module}.py').write_text(PLANTED.format(marker=str(marker)))
    path = folder / file
    config = json.loads(path.read_text()) if path.exists() else {}
    config['auto_map'] = {'AutoTokenizer': [None, f'{module}.PlantedTokenizer']}
    if file == 'tokenizer_config.json':
        config['tokenizer_class'] = 'PlantedTokenizer'
    path.write_text(json.dumps(config))
    if file == 'config.json':                        # transformers then takes the class from config.json
        tok_config = json.loads((folder / 'tokenizer_config.json').read_text())
        tok_config.pop('tokenizer_class', None)
        (folder / 'tokenizer_config.json').write_text(json.dumps(tok_config))


@pytest.fixture
def answer_yes(monkeypatch):
    """What a user would type at transformers' "run custom code? [y/N]" prompt."""
    monkeypatch.setattr('sys.stdin', io.StringIO('y\n' * 4))


@pytest.mark.parametrize('file', ['tokenizer_config.json', 'config.json'])
def test_an_auto_map_is_refused_and_never_runs(tmp_path, answer_yes, file):
    llm_dir, _ = train_demo_tokenizers(['a tiny corpus for a tiny tokenizer'] * 4, str(tmp_path / 'tok'))
    marker = tmp_path / 'RAN'
    plant(pathlib.Path(llm_dir), marker, file)
    with pytest.raises(ValueError, match=f"{file}.*auto_map"):
        load_tokenizer(llm_dir)
    assert not marker.exists()


def test_the_whisper_checkpoint_tokenizer_too(tmp_path, answer_yes):
    folder, marker = tmp_path / 'whisper', tmp_path / 'RAN'
    shutil.copytree(WHISPER, folder)
    plant(folder, marker, 'tokenizer_config.json')
    with pytest.raises(asr.ASRError, match='tokenizer_config.json.*auto_map'):
        asr.WhisperASR(str(folder))
    assert not marker.exists()


def test_only_load_tokenizer_calls_from_pretrained():
    """Every tokenizer the package loads goes through ``load_tokenizer`` (custom code off, auto_map refused)."""
    calls = []
    for path in PACKAGE.rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr == 'from_pretrained':
                calls.append(str(path.relative_to(PACKAGE)))
            if isinstance(node, ast.keyword) and node.arg == 'trust_remote_code':
                assert isinstance(node.value, ast.Constant) and node.value.value is False, path
    assert calls == ['data/tokenizers.py'], calls
