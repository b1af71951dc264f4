"""A checkpoint's own chat template (Qwen2.5/Qwen3 instruct and others), read from its folder and rendered safely.

An instruct model was trained on the text its chat template writes, so the instruction prompt wraps the user
turn in it when the tokenizer folder has one: ``chat_template.jinja`` (transformers 5.x writes it, and it
wins, as in transformers), else ``tokenizer_config.json``'s ``chat_template`` (a string, or a list of named
templates whose ``default`` is used).

A template is code from a downloaded folder, so it runs in Jinja's ``ImmutableSandboxedEnvironment`` with
what transformers gives templates (``trim_blocks``, ``lstrip_blocks``, loop controls, its ``tojson``,
``raise_exception``, ``strftime_now``) and nothing else; nothing the folder names is imported. Rendered with
sentinel strings in place of the user's text and the answer, it gives the pieces of text that
``prompt.build_prompt`` puts around its own (:class:`ChatFrame`).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

CHAT_TEMPLATE_FILE = 'chat_template.jinja'
_USER = '\x00MICROEMO-USER\x00'
_ANSWER = '\x00MICROEMO-ANSWER\x00'


def read_chat_template(folder: str) -> str | None:
    """The folder's default chat template text, or None when it has none."""
    path = os.path.join(folder, CHAT_TEMPLATE_FILE)
    if os.path.isfile(path):
        with open(path, encoding='utf-8') as f:
            return f.read()
    config_path = os.path.join(folder, 'tokenizer_config.json')
    if not os.path.isfile(config_path):
        return None
    with open(config_path, encoding='utf-8') as f:
        template = json.load(f).get('chat_template')
    if isinstance(template, list):  # [{'name': 'default', 'template': ...}, {'name': 'tool_use', ...}]
        named = {t.get('name'): t.get('template') for t in template if isinstance(t, dict)}
        template = named.get('default')
    if template is not None and not isinstance(template, str):
        raise ValueError(f"{config_path}: chat_template must be a string or a list of named templates")
    return template or None


def _environment() -> ImmutableSandboxedEnvironment:
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters['tojson'] = tojson
    env.globals['raise_exception'] = raise_exception
    env.globals['strftime_now'] = lambda fmt: datetime.datetime.now().strftime(fmt)
    return env


def render(template: str, messages: list[dict], *, add_generation_prompt: bool, **variables) -> str:
    """The template's text for ``messages`` ([{'role': ..., 'content': ...}, ...]), as apply_chat_template
    renders it (``variables`` such as bos_token, eos_token, enable_thinking)."""
    try:
        return _environment().from_string(template).render(messages=messages,
                                                           add_generation_prompt=add_generation_prompt, **variables)
    except jinja2.TemplateError as e:
        raise ValueError(f"the chat template could not be rendered: {type(e).__name__}: {e}") from e


@dataclasses.dataclass(frozen=True)
class ChatFrame:
    """The text a chat template puts around one user turn and its answer: ``before_user`` + user text +
    ``before_answer`` (the generation prompt's end) + ``answer_prefix`` + answer + ``after_answer``.
    ``answer_prefix`` is what a template writes before an answer beyond the generation prompt (LLaMA-2's: ' ')."""
    before_user: str
    before_answer: str
    answer_prefix: str
    after_answer: str


def chat_frame(template: str, *, system: str | None = None, bos_token: str = '', eos_token: str = '') -> ChatFrame:
    """Render ``template`` around sentinels: a system turn (when ``system`` is given; else the template's
    default, if any), one user turn, the generation prompt (thinking off, for templates that have the
    switch) and, for training, the assistant's answer."""
    messages = ([{'role': 'system', 'content': system}] if system is not None else []) + [
        {'role': 'user', 'content': _USER}]
    variables = dict(bos_token=bos_token, eos_token=eos_token, enable_thinking=False)
    prompt = render(template, messages, add_generation_prompt=True, **variables)
    full = render(template, messages + [{'role': 'assistant', 'content': _ANSWER}], add_generation_prompt=False,
                  **variables)
    if prompt.count(_USER) != 1 or full.count(_USER) != 1 or full.count(_ANSWER) != 1:
        raise ValueError("the chat template does not write the user's message and the answer once each")
    before_user, before_answer = prompt.split(_USER)
    if not full.startswith(before_user):
        raise ValueError("the chat template writes different text before the user's message with and without an "
                         "answer")
    written_before, after_answer = full.split(_USER, 1)[1].split(_ANSWER)
    if not written_before.startswith(before_answer):
        raise ValueError(f"the chat template's generation prompt ends {before_answer!r}, but before an answer it "
                         f"writes {written_before!r}: a model trained on one would be prompted with the other")
    return ChatFrame(before_user, before_answer, written_before[len(before_answer):], after_answer)
