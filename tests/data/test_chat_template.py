"""A tokenizer folder's own chat template (Qwen's ChatML here): read, rendered in the sandbox exactly as
transformers renders it, wrapped around MicroEmo's user text; EOS ids from generation_config.json; the tokenizer
identity; folders that ask to run code are refused."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from microemo_jax.data import prompt
from microemo_jax.data.chat_template import CHAT_TEMPLATE_FILE, chat_frame, read_chat_template, render
from microemo_jax.data.demo_tokenizers import CHATML_TEMPLATE, train_demo_tokenizers
from microemo_jax.data.tokenizers import copy_tokenizer, eos_token_ids, load_tokenizer, tokenizer_identity

TEXTS = ['She smiles at the camera, then frowns briefly.', 'He shouts: I am not angry!'] * 3
QUESTION = prompt.DESCRIPTION_QUESTION
ANSWER = 'She smiles, yet a brief frown betrays worry.'


@pytest.fixture(scope='module')
def qwen_dir(tmp_path_factory):
    llm_dir, _ = train_demo_tokenizers(TEXTS, str(tmp_path_factory.mktemp('tok')), llm_vocab_size=320,
                                       qformer_vocab_size=120, style='qwen')
    return llm_dir


@pytest.fixture(scope='module')
def tok(qwen_dir):
    return load_tokenizer(qwen_dir)


def _user_text(pad: str, nv: int, na: int) -> str:
    """The user turn build_prompt writes for 2 frames, one utterance and a subtitle (slots shown as ``pad``)."""
    return (f"<Video>{pad * nv}</Video> <Audio>{pad * na}</Audio> The video contains 2 frames sampled at 0.0, 1.5 "
            f"seconds. Transcribed speech: 0.0 - 1.2 seconds, I am fine. The subtitle of this video is: "
            f"<Subtitle>I am fine</Subtitle>. {QUESTION}")


def _prompt(tok, answer=None, **kw):
    return prompt.build_prompt(tok, timestamps=[0.0, 1.5], utterances=[(0.0, 1.2, 'I am fine.')],
                               subtitle='I am fine', question=QUESTION, answer=answer, num_video_tokens=3,
                               num_audio_tokens=2, max_len=400, **kw)


def test_the_qwen_folder_loads_offline_with_its_template_and_eos_ids(qwen_dir, tok):
    assert read_chat_template(qwen_dir) == CHATML_TEMPLATE == tok.chat_template
    assert tok.bos_token_id is None and tok.eos_token == '<|im_end|>' and tok.pad_token == '<|endoftext|>'
    ids = eos_token_ids(qwen_dir, tok)
    assert ids == [tok.convert_tokens_to_ids('<|im_end|>'), tok.convert_tokens_to_ids('<|endoftext|>')]
    assert prompt.chat_frame_of(tok) is not None


def test_the_prompt_is_what_transformers_apply_chat_template_writes(qwen_dir, tok):
    """Inference and training prompts decode to transformers' rendering of the same conversation, the slots are
    where build_prompt says, and the answer's loss covers it and the <|im_end|> that ends the turn."""
    pad = '<|endoftext|>'
    user = [{'role': 'user', 'content': _user_text(pad, 3, 2)}]
    p = _prompt(tok, eos_token_ids=eos_token_ids(qwen_dir, tok))
    want = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    assert want.startswith('<|im_start|>system\n') and want.endswith('<|im_start|>assistant\n')
    assert tok.decode(p.input_ids) == want
    assert list(p.input_ids[p.modality_positions]) == [tok.pad_token_id] * 5
    assert not p.loss_mask.any()

    t = _prompt(tok, answer=ANSWER, eos_token_ids=eos_token_ids(qwen_dir, tok))
    full = tok.apply_chat_template(user + [{'role': 'assistant', 'content': ANSWER}], tokenize=False)
    assert full == want + ANSWER + '<|im_end|>\n'
    assert tok.decode(t.input_ids) == want + ANSWER + '<|im_end|>'   # generation stops at <|im_end|>
    assert list(t.input_ids[:len(p.input_ids)]) == list(p.input_ids)
    assert tok.decode(t.input_ids[t.loss_mask]) == ANSWER + '<|im_end|>'


def test_a_template_that_writes_text_before_the_answer_and_no_eos():
    """A LLaMA-2-like template: the answer follows ' ' after the generation prompt, and the turn ends with
    ' ' + eos text; a template that writes no eos token gets the eos id appended."""
    template = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + "
                "' [/INST]' }}{% else %}{{ ' ' + m['content'] + ' ' + eos_token }}{% endif %}{% endfor %}")
    frame = chat_frame(template, bos_token='<s>', eos_token='</s>')
    assert (frame.before_user, frame.before_answer, frame.answer_prefix, frame.after_answer) == (
        '<s>[INST] ', ' [/INST]', ' ', ' </s>')
    assert chat_frame(CHATML_TEMPLATE).after_answer == '<|im_end|>\n'


def test_templates_run_in_the_sandbox():
    escape = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(ValueError, match='could not be rendered: SecurityError'):
        render(escape, [{'role': 'user', 'content': 'x'}], add_generation_prompt=True)
    with pytest.raises(ValueError, match='only user and assistant'):
        render("{{ raise_exception('only user and assistant') }}", [], add_generation_prompt=False)
    with pytest.raises(ValueError, match='once each'):
        chat_frame("{{ messages[0]['content'] }}{{ messages[0]['content'] }}")


def test_where_the_template_is_read_from(tmp_path, qwen_dir):
    folder = tmp_path / 'tok'
    copy_tokenizer(qwen_dir, str(folder))
    os.remove(folder / CHAT_TEMPLATE_FILE)
    assert read_chat_template(str(folder)) is None
    config = json.loads((folder / 'tokenizer_config.json').read_text())
    (folder / 'tokenizer_config.json').write_text(json.dumps({**config, 'chat_template': [
        {'name': 'tool_use', 'template': 'tools'}, {'name': 'default', 'template': CHATML_TEMPLATE}]}))
    assert read_chat_template(str(folder)) == CHATML_TEMPLATE
    (folder / CHAT_TEMPLATE_FILE).write_text('{{ messages }}')  # the .jinja file wins, as in transformers
    assert read_chat_template(str(folder)) == '{{ messages }}'


def test_tokenizer_identity_covers_the_files_and_the_template_only(tmp_path, qwen_dir):
    base = tokenizer_identity(qwen_dir)
    assert base.startswith('sha256:') and len(base) == len('sha256:') + 16
    copy = tmp_path / 'copy'
    copy_tokenizer(qwen_dir, str(copy))
    assert tokenizer_identity(str(copy)) == base
    (copy / 'model.safetensors').write_bytes(b'weights')  # a checkpoint folder's other files do not count
    (copy / 'README.md').write_text('hello')
    assert tokenizer_identity(str(copy)) == base
    for name, edit in ((CHAT_TEMPLATE_FILE, lambda t: t.replace('helpful', 'careful')),
                       ('generation_config.json', lambda t: t.replace('[', '[0, ')),
                       ('tokenizer.json', lambda t: t.replace('"<|im_end|>"', '"<|im_stop|>"'))):
        changed = tmp_path / name
        shutil.copytree(copy, changed)
        text = (changed / name).read_text()
        (changed / name).write_text(edit(text))
        assert (changed / name).read_text() != text
        assert tokenizer_identity(str(changed)) != base, name


def test_a_tokenizer_folder_that_names_code_is_refused(tmp_path, qwen_dir):
    folder = tmp_path / 'planted'
    copy_tokenizer(qwen_dir, str(folder))
    config = json.loads((folder / 'tokenizer_config.json').read_text())
    config['auto_map'] = {'AutoTokenizer': ['tokenization_evil.EvilTokenizer', None]}
    (folder / 'tokenizer_config.json').write_text(json.dumps(config))
    (folder / 'tokenization_evil.py').write_text("raise SystemExit('planted code ran')\n")
    with pytest.raises(ValueError, match="holds an 'auto_map'"):
        load_tokenizer(str(folder))
