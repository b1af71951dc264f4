"""The ``llm:PATH`` extractor on tiny Qwen2 / Qwen3 checkpoints (committed fixtures with a ChatML tokenizer): the
official prompts in the folder's own chat template, greedy and deterministic, one compiled program per shape,
replies read or counted, and the folders it must refuse."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from microemo_jax import generate as generate_lib
from microemo_jax.data.chat_template import CHAT_TEMPLATE_FILE
from microemo_jax.data.demo_tokenizers import CHATML_TEMPLATE
from microemo_jax.data.tokenizers import load_tokenizer
from microemo_jax.inference import llm_extractor
from microemo_jax.inference.llm_extractor import LLMExtractor
from microemo_jax.metrics import extractors, protocol
from microemo_jax.metrics.extractors import labels_from_answer, make_extractor
from tests.support.tiny_instruct import FIXTURES, instruct_folder, scripted_folder

TEXTS = ['She smiles, yet her voice trembles.', 'He shouts and slams the door.', 'They sit quietly.',
         'A brief frown, then a laugh.', 'Nothing much happens.']


@pytest.fixture(scope='module')
def qwen2(tmp_path_factory):
    return instruct_folder(tmp_path_factory.mktemp('llm'), 'qwen2_tied_bias')


def _program_count() -> int:
    return generate_lib._prefill._cache_size() + generate_lib._decode._cache_size()


def test_greedy_deterministic_and_compiled_once_per_shape(qwen2):
    ex = LLMExtractor(qwen2, batch_size=4, label_tokens=10, sentiment_tokens=3)
    assert ex.describe() == {'labels': 'llm:qwen2_tied_bias', 'sentiment': 'llm:qwen2_tied_bias'}  # no path
    names = [f'c{i}' for i in range(len(TEXTS))]
    first = ex.extract_batch(names, TEXTS)                     # 5 clips: a full batch and one filled up
    compiled = _program_count()
    assert ex.extract_batch(names, TEXTS) == first
    other = ex.extract_batch(names[:3], [t + ' Indeed.' for t in TEXTS[:3]])   # other text, same shapes
    assert _program_count() == compiled
    assert LLMExtractor(qwen2, batch_size=2, label_tokens=10, sentiment_tokens=3).extract_batch(names, TEXTS) == first
    for e in first + other:
        read = labels_from_answer(e.answer)
        assert e.labels == (read or []) and e.unread == (read is None)
        assert e.answer == protocol.clean_response(e.answer) and e.sentiment == protocol.clean_response(e.sentiment)
    assert len({e.answer for e in first}) > 1                  # the replies depend on the clip's text
    assert make_extractor(f'llm:{qwen2}', batch_size=4).name == 'llm:qwen2_tied_bias'   # the registry's hook


def test_the_prompts_are_the_folders_chat_template(tmp_path, monkeypatch):
    """Every prompt generate sees is transformers' apply_chat_template of the official prompt in the folder's own
    template (here not the demo's ChatML: another default system turn), and the reply is decoded from its tokens;
    the sentiment call gets the cleaned label reply verbatim."""
    folder = instruct_folder(tmp_path, 'qwen3_qknorm_untied')
    template = CHATML_TEMPLATE.replace('You are a helpful assistant.', 'You judge feelings, tersely.')
    with open(os.path.join(folder, CHAT_TEMPLATE_FILE), 'w', encoding='utf-8') as f:
        f.write(template)
    tok = load_tokenizer(folder)
    calls = []

    def spy(model, input_ids, attention_mask, **kw):
        out = generate_lib.generate(model, input_ids, attention_mask, **kw)
        calls.append(([r[m].tolist() for r, m in zip(input_ids, attention_mask.astype(bool))], out))
        return out
    monkeypatch.setattr(llm_extractor, 'generate', spy)
    ex = LLMExtractor(folder, batch_size=2, label_tokens=6, sentiment_tokens=3, dtype='float32')
    got = ex.extract_batch(['a', 'b'], TEXTS[:2])

    def chat(prompt):
        text = tok.apply_chat_template([{'role': 'user', 'content': prompt}], add_generation_prompt=True,
                                       tokenize=False)
        assert text.startswith('<|im_start|>system\nYou judge feelings, tersely.<|im_end|>')
        return tok(text, add_special_tokens=False)['input_ids']
    (label_ids, label_out), (sentiment_ids, _) = calls
    assert label_ids == [chat(protocol.label_prompt(t)) for t in TEXTS[:2]]
    assert sentiment_ids == [chat(protocol.sentiment_prompt(e.answer)) for e in got]
    replies = [protocol.clean_response(llm_extractor.decode_answer(tok, row, ex.eos_ids)) for row in label_out]
    assert [e.answer for e in got] == replies


@pytest.mark.parametrize('reply, labels, unread', [('[happy, calm]', ['happy', 'calm'], False),
                                                   ('[happy, calm', [], True),      # cut off: no list, counted
                                                   ('positive', [], True)])
def test_the_reply_is_read_as_officially(tmp_path, reply, labels, unread):
    """A checkpoint that replies ``reply`` to any prompt: its list is the labels, and the sentiment call gets the
    label reply verbatim (this model answers it with the same text, which WAF would count as neutral)."""
    ex = LLMExtractor(scripted_folder(tmp_path, reply), batch_size=2)
    assert ex.extract_batch(['a'], ['She smiles.']) == [llm_extractor.Extraction(labels, reply, reply, unread)]
    assert ex.labels('a', 'He frowns.') == labels and ex.sentiment('a', labels) == reply


@pytest.mark.parametrize('answer, labels', [
    ('[happy, sad]', ['happy', 'sad']),
    ("['Happy', \"worried\"]", ['Happy', 'worried']),      # quotes split as the official scorer splits them
    ('[]', []),
    ('[sad].', ['sad']),                                   # words around the list are not labels
    ('The labels are [tense, calm] here', ['tense', 'calm']),
    ('happy, sad', None), ('[happy, sad', None), ('', None), ('\ufffd\ufffdnnn', None),
])
def test_a_reply_without_a_list_gives_no_labels(answer, labels):
    assert labels_from_answer(answer) == labels


def test_folders_it_refuses(qwen2, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match='not a checkpoint folder'):
        LLMExtractor(str(tmp_path / 'nowhere'))
    bare = tmp_path / 'no_template'
    shutil.copytree(qwen2, bare)
    os.remove(bare / CHAT_TEMPLATE_FILE)
    with pytest.raises(ValueError, match='has no chat template'):
        LLMExtractor(str(bare))
    custom = tmp_path / 'custom_code'
    shutil.copytree(qwen2, custom)
    config = json.loads((custom / 'tokenizer_config.json').read_text())
    (custom / 'tokenizer_config.json').write_text(json.dumps({**config, 'auto_map': {'AutoTokenizer': ['x.T', None]}}))
    with pytest.raises(ValueError, match="auto_map"):
        LLMExtractor(str(custom))
    small = tmp_path / 'small_vocab'                           # the fixture's own 96-id weights, a 512-id tokenizer
    shutil.copytree(qwen2, small)
    for name in ('config.json', 'model.safetensors'):
        shutil.copyfile(FIXTURES / 'qwen2_tied_bias' / name, small / name)
    with pytest.raises(ValueError, match='vocab_size is 96'):
        LLMExtractor(str(small)).extract_batch(['a'], ['x'])
    monkeypatch.setattr(extractors, '_FACTORIES', {})          # metrics alone: llm: says how to get it
    with pytest.raises(ValueError, match='import microemo_jax.inference.llm_extractor'):
        make_extractor(f'llm:{qwen2}')
