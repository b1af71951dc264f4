"""Demo tokenizers: trained with `tokenizers`, saved as transformers folders, loaded back offline."""
from __future__ import annotations

import json
import os

import pytest

from microemo_jax.data import prompt
from microemo_jax.data.demo_tokenizers import train_demo_tokenizers
from microemo_jax.data.tokenizers import load_tokenizer

TEXTS = [
    "The person smiles while saying goodbye, but the voice trembles.",
    "She frowns; a brief micro-expression of contempt contradicts her words.",
    "The character's emotional state is happy, excited.",
    "Été: naïve café, 日本語のテキスト — and emoji 🙂.",
] * 4


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('tok'))
    return train_demo_tokenizers(TEXTS, out)


def test_llm_tokenizer_round_trip_and_specials(trained):
    llm_dir, _ = trained
    tok = load_tokenizer(llm_dir)
    assert len(tok) <= 512
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2, 3)
    with open(os.path.join(llm_dir, 'tokenizer_config.json')) as f:
        config = json.load(f)
    assert [config[f'{k}_token_id'] for k in ('unk', 'bos', 'eos', 'pad')] == [0, 1, 2, 3]
    for text in TEXTS[:4] + ["  two  spaces\n\nnew lines\ttab ", "never seen: Ωμέγα ✓ 𝔘", "[INST] <<SYS>>\n \n<</SYS>>"]:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.unk_token_id not in ids
        assert tok.decode(ids) == text
    assert tok('hi')['input_ids'][0] == tok.bos_token_id        # LLaMA-style: <s> prepended


def test_qformer_tokenizer_lowercase_round_trip(trained):
    _, qf_dir = trained
    tok = load_tokenizer(qf_dir, what='Q-Former')
    assert len(tok) <= 512
    assert tok.pad_token_id == 0
    assert tok.convert_ids_to_tokens([tok.cls_token_id, tok.sep_token_id, tok.mask_token_id, tok.unk_token_id]) == [
        '[CLS]', '[SEP]', '[MASK]', '[UNK]']
    for sentence in prompt.timestamp_sentences([0, 0.5, 7.25, 59.9, 123.4, 599.9, 3600.0]):
        ids = tok(sentence)['input_ids']
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
        assert tok.unk_token_id not in ids, tok.convert_ids_to_tokens(ids)
        assert tok.decode(ids, skip_special_tokens=True) == sentence.lower()
    assert tok.decode(tok("The Person SMILES.")['input_ids'], skip_special_tokens=True) == 'the person smiles.'


def test_training_is_deterministic_and_sizes_are_respected(trained, tmp_path):
    llm_dir, qf_dir = train_demo_tokenizers(TEXTS, str(tmp_path / 'again'))
    for a, b in ((llm_dir, trained[0]), (qf_dir, trained[1])):
        with open(os.path.join(a, 'tokenizer.json'), 'rb') as f1, open(os.path.join(b, 'tokenizer.json'), 'rb') as f2:
            assert f1.read() == f2.read()
    llm_dir, qf_dir = train_demo_tokenizers(TEXTS, str(tmp_path / 'small'), llm_vocab_size=300, qformer_vocab_size=120)
    assert len(load_tokenizer(llm_dir)) <= 300 and len(load_tokenizer(qf_dir)) <= 120
    with pytest.raises(ValueError, match='llm_vocab_size=100 is too small'):
        train_demo_tokenizers(TEXTS, str(tmp_path / 'x'), llm_vocab_size=100)
    with pytest.raises(ValueError, match='qformer_vocab_size=10 is too small'):
        train_demo_tokenizers(TEXTS, str(tmp_path / 'y'), qformer_vocab_size=10)


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='LLM tokenizer folder'):
        load_tokenizer(str(tmp_path / 'missing'))
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'README.md').write_text('not a tokenizer')
    with pytest.raises(ValueError, match='Q-Former tokenizer folder .* holds none of'):
        load_tokenizer(str(tmp_path / 'empty'), what='Q-Former')
    (tmp_path / 'broken').mkdir()
    (tmp_path / 'broken' / 'tokenizer.json').write_text('{"not": "a tokenizer"')
    (tmp_path / 'broken' / 'tokenizer_config.json').write_text('{}')
    with pytest.raises(ValueError, match='could not be loaded offline'):
        load_tokenizer(str(tmp_path / 'broken'))
