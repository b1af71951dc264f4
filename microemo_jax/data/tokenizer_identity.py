"""A tokenizer's identity: a content hash of the files that decide how text becomes token ids.

Token ids mean nothing without the tokenizer that made them: weights trained on one tokenizer's ids
answer gibberish when fed another's, and nothing fails. So every prepared dataset (``prepare_report.json``)
and every parameter folder (``training.json``) records the identity of its two tokenizers (the LLM's and
the image Q-Former's), and wherever two meet (train start and resume, ``init.params``, evaluate,
predict and serve loading a folder) they are compared; a mismatch is refused, naming both sides.

``tokenizer_identity(folder)`` hashes, by name and bytes, every file of ``IDENTITY_FILES`` present in the
folder (the tokenizer model and vocabularies, its config and special tokens, the chat template, whether in
``tokenizer_config.json`` or ``chat_template.jinja``/``.json`` or ``additional_chat_templates/``, and
``generation_config.json``, whose end-of-sequence ids end an answer). Other files (model weights, README, a nested ``qformer_tokenizer/``) do
not count, so a Hugging Face model folder passed as ``--tokenizer`` has the identity of its tokenizer
only. The identity is ``sha256:`` and the first 16 hex digits of the digest.

Self-contained on purpose (no ``transformers``): it must give the same answer for the same bytes
wherever it runs, without loading the tokenizer.
"""
from __future__ import annotations

import hashlib
import os

IDENTITY_FILES = ('tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json',
                  'tokenizer.model', 'spiece.model', 'sentencepiece.bpe.model', 'vocab.json', 'vocab.txt',
                  'merges.txt', 'chat_template.jinja', 'chat_template.json',
                  'generation_config.json')   # its end-of-sequence ids decide where an answer ends
CHAT_TEMPLATE_DIR = 'additional_chat_templates'
ROLES = {'llm': 'LLM', 'qformer': 'Q-Former'}


class TokenizerMismatch(ValueError):
    """Two things that must share a tokenizer (weights and data, a run and its resume) do not."""


def _identity_files(folder: str) -> list[str]:
    names = [n for n in IDENTITY_FILES if os.path.isfile(os.path.join(folder, n))]
    extra = os.path.join(folder, CHAT_TEMPLATE_DIR)
    if os.path.isdir(extra):
        names += sorted(f'{CHAT_TEMPLATE_DIR}/{n}' for n in os.listdir(extra)
                        if os.path.isfile(os.path.join(extra, n)))
    return names


def tokenizer_identity(folder: str) -> str:
    """``sha256:<16 hex>`` of the tokenizer files in ``folder`` (names and bytes); ValueError if it has none."""
    names = _identity_files(folder)
    if not names:
        raise ValueError(f"{folder} holds no tokenizer file ({', '.join(IDENTITY_FILES)}): not a tokenizer folder")
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode() + b'\0')
        file_hash = hashlib.sha256()
        with open(os.path.join(folder, *name.split('/')), 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                file_hash.update(block)
        h.update(file_hash.digest())
    return 'sha256:' + h.hexdigest()[:16]


def identities(llm_dir: str, qformer_dir: str) -> dict[str, str]:
    """{'llm': identity, 'qformer': identity} of a pair of tokenizer folders."""
    return {'llm': tokenizer_identity(llm_dir), 'qformer': tokenizer_identity(qformer_dir)}


def describe(ids: dict) -> str:
    """'LLM tokenizer sha256:... and Q-Former tokenizer sha256:...'."""
    return ' and '.join(f"{ROLES[k]} tokenizer {ids.get(k)}" for k in ROLES)


def check_same(expected: dict | None, found: dict | None, expected_what: str, found_what: str, hint: str = '') -> None:
    """Raise ``TokenizerMismatch`` when two recorded identities differ; a side that recorded none (None) is not
    compared. ``*_what`` name each side (a folder and the file that records it)."""
    if not expected or not found:
        return
    differ = [k for k in ROLES if expected.get(k) != found.get(k)]
    if differ:
        raise TokenizerMismatch(
            f"tokenizer mismatch: {expected_what} uses {describe(expected)}, but {found_what} uses "
            f"{describe(found)} (the {' and '.join(ROLES[k] for k in differ)} tokenizer differs): token ids of one "
            f"mean other words to the other" + (f"; {hint}" if hint else ''))
