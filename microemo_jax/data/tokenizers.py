"""Hugging Face tokenizers loaded offline from a folder, what identifies them, and their end-of-sequence ids.

A tokenizer folder is read as data, never as code: transformers loads it with remote code off, and a
``tokenizer_config.json`` that names code to run (``auto_map``) is refused. ``tokenizer_identity`` is the one
content hash of a folder's tokenizer files, the chat template included (``TOKENIZER_FILES``): token ids and
prompts are only meaningful with the tokenizer and template that made them, so prepared records and parameter
folders carry it and whoever brings two together compares it. ``copy_tokenizer`` copies exactly those files, so
a copy keeps the identity (and an LLM checkpoint folder used as a tokenizer folder does not drag its weights).
The demo's own tokenizers are trained in ``data/demo_tokenizers.py``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil

from transformers import AutoTokenizer

from microemo_jax.data.chat_template import CHAT_TEMPLATE_FILE

_VOCAB_FILES = ('tokenizer.json', 'tokenizer.model', 'vocab.json', 'vocab.txt')
# Every file that can change what a tokenizer folder turns text into, or the prompt built around it: the
# vocabulary and merges, the special tokens, the chat template and the end-of-sequence ids.
TOKENIZER_FILES = _VOCAB_FILES + ('merges.txt', 'added_tokens.json', 'special_tokens_map.json',
                                  'tokenizer_config.json', CHAT_TEMPLATE_FILE, 'generation_config.json')


def load_tokenizer(path: str, *, what: str = 'LLM'):
    """A ``transformers`` tokenizer from a local folder, never from the network."""
    if not path or not os.path.isdir(path):
        raise FileNotFoundError(f"{what} tokenizer folder {path!r} does not exist: pass a local Hugging Face "
                                f"tokenizer folder (tokenizer.json or tokenizer.model, tokenizer_config.json)")
    candidates = _VOCAB_FILES + ('tokenizer_config.json',)
    present = [f for f in candidates if os.path.isfile(os.path.join(path, f))]
    if not present:
        raise ValueError(f"{what} tokenizer folder {path!r} holds none of {', '.join(candidates)}: it is not "
                         f"a Hugging Face tokenizer folder")
    _refuse_code(path, what)
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except Exception as e:  # transformers raises many types here; name the folder and the cause
        raise ValueError(f"{what} tokenizer in {path!r} (files: {', '.join(present)}) could not be loaded offline: "
                         f"{type(e).__name__}: {e}") from e


def _refuse_code(path: str, what: str) -> None:
    """A tokenizer_config.json with ``auto_map`` asks to run a module shipped with the folder: never."""
    config = os.path.join(path, 'tokenizer_config.json')
    if os.path.isfile(config):
        try:
            with open(config, encoding='utf-8') as f:
                auto_map = json.load(f).get('auto_map')
        except (OSError, ValueError, AttributeError) as e:
            raise ValueError(f"{what} tokenizer: {config} is not a readable JSON object ({e})") from None
        if auto_map:
            raise ValueError(f"{what} tokenizer: {config} names code to run (auto_map {auto_map}); microemo-jax runs "
                             f"no code from a folder. Use a tokenizer folder without auto_map (tokenizer.json is "
                             f"enough)")


def tokenizer_identity(folder: str) -> str:
    """The content hash of a tokenizer folder: 'sha256:' + 16 hex digits over the bytes of each of its
    ``TOKENIZER_FILES`` (name and content, in that order), the chat template and generation_config.json
    included. Two folders with the same identity tokenize and template prompts the same way; the hash ignores
    everything else in the folder (weights, README), and ``copy_tokenizer`` preserves it."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"tokenizer folder {folder!r} does not exist")
    digest = hashlib.sha256()
    found = False
    for name in TOKENIZER_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, 'rb') as f:
                data = f.read()
            digest.update(f'{name}\0{len(data)}\0'.encode())
            digest.update(data)
            found = True
    if not found:
        raise ValueError(f"tokenizer folder {folder!r} holds none of {', '.join(TOKENIZER_FILES)}")
    return 'sha256:' + digest.hexdigest()[:16]


def copy_tokenizer(src: str, dst: str) -> None:
    """Copy the ``TOKENIZER_FILES`` of ``src`` into ``dst`` (created): the same identity, no weights."""
    os.makedirs(dst, exist_ok=True)
    for name in TOKENIZER_FILES:
        if os.path.isfile(os.path.join(src, name)):
            shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))


def eos_token_ids(folder: str, tokenizer=None) -> list[int]:
    """The ids that end generation: ``generation_config.json``'s ``eos_token_id`` (an id or a list, as an instruct
    checkpoint ends a turn with one token and a text with another), else the tokenizer's eos token."""
    path = os.path.join(folder, 'generation_config.json')
    ids = None
    if os.path.isfile(path):
        try:
            with open(path, encoding='utf-8') as f:
                ids = json.load(f).get('eos_token_id')
        except (OSError, ValueError, AttributeError) as e:
            raise ValueError(f"{path} is not a readable JSON object ({e})") from None
    if ids is None and tokenizer is not None:
        ids = tokenizer.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if not all(isinstance(i, int) and i >= 0 for i in ids):
        raise ValueError(f"{path}: eos_token_id must be an id or a list of ids, got {ids}")
    return ids
