"""Hugging Face tokenizers loaded offline from a folder, what identifies them, and their end-of-sequence ids.

A tokenizer folder is read as data, never as code: every tokenizer the package loads (prepare's, a params
folder's, Whisper's for ASR) goes through ``load_tokenizer``, with remote code off
(``trust_remote_code=False``), and a folder whose ``tokenizer_config.json`` or ``config.json`` names code to run
(``auto_map``) is refused before transformers reads it. ``tokenizer_identity`` (``data/tokenizer_identity.py``)
is the one content hash of a folder's tokenizer files, the chat template and the end-of-sequence ids included:
token ids and prompts are only meaningful with the tokenizer and template that made them, so prepared records
and parameter folders carry it and whoever brings two together compares it. ``copy_tokenizer`` copies exactly
those files, so a copy keeps the identity (and an LLM checkpoint folder used as a tokenizer folder does not drag
its weights). The demo's own tokenizers are trained in ``data/demo_tokenizers.py``.
"""
from __future__ import annotations

import json
import os
import shutil

from transformers import AutoTokenizer

from microemo_jax.data.tokenizer_identity import CHAT_TEMPLATE_DIR, IDENTITY_FILES, tokenizer_identity

__all__ = ['load_tokenizer', 'refuse_custom_code', 'tokenizer_identity', 'copy_tokenizer', 'eos_token_ids']
_VOCAB_FILES = ('tokenizer.json', 'tokenizer.model', 'vocab.json', 'vocab.txt')
_CONFIG_FILES = ('tokenizer_config.json', 'config.json')   # the files transformers takes an auto_map from


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
    refuse_custom_code(path, what)
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except Exception as e:  # transformers raises many types here; name the folder and the cause
        raise ValueError(f"{what} tokenizer in {path!r} (files: {', '.join(present)}) could not be loaded offline: "
                         f"{type(e).__name__}: {e}") from e


def refuse_custom_code(path: str, what: str = 'LLM') -> None:
    """Raise ValueError naming the file and key when the folder asks transformers to run code of its own."""
    for name in _CONFIG_FILES:
        file = os.path.join(path, name)
        if not os.path.isfile(file):
            continue
        try:
            with open(file, encoding='utf-8') as f:
                config = json.load(f)
        except (OSError, ValueError) as e:
            raise ValueError(f"{what} tokenizer: {file} cannot be read ({type(e).__name__}: {e})") from None
        if isinstance(config, dict) and 'auto_map' in config:
            raise ValueError(f"{what} tokenizer: {file} holds an 'auto_map' (custom code the folder ships, which "
                             f"we never run): refused; use a tokenizer folder without custom code")


def copy_tokenizer(src: str, dst: str) -> None:
    """Copy the identity's files (``IDENTITY_FILES``, extra chat templates) of ``src`` into ``dst`` (created): the
    same identity, no weights."""
    os.makedirs(dst, exist_ok=True)
    for name in IDENTITY_FILES:
        if os.path.isfile(os.path.join(src, name)):
            shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
    if os.path.isdir(os.path.join(src, CHAT_TEMPLATE_DIR)):
        shutil.copytree(os.path.join(src, CHAT_TEMPLATE_DIR), os.path.join(dst, CHAT_TEMPLATE_DIR), dirs_exist_ok=True)


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
