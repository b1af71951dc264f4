"""Hugging Face tokenizers: loaded offline from a folder, or trained small for the demo corpus.

The demo makes two tokenizers with the ``tokenizers`` library so that nothing is downloaded:

* the LLM's: byte-level BPE trained on the texts (any text round-trips exactly, no unknown bytes) with
  LLaMA's special-token order ``<unk>``=0, ``<s>``=1, ``</s>``=2, plus ``<pad>``=3; ``<s>`` is prepended
  as LLaMA's tokenizer does;
* the image Q-Former's: a BERT-style lower-cased WordPiece (``[PAD]``=0, ``[UNK]``, ``[CLS]``, ``[SEP]``,
  ``[MASK]``, encodings wrapped in ``[CLS] ... [SEP]``) for the timestamp sentences, its vocabulary
  chosen deterministically (see ``_timestamp_wordpiece``). It splits on whitespace only (BERT also
  splits at punctuation, so "0.5" would decode as "0. 5"), which makes decode(encode(text)) ==
  text.lower() for whitespace-normalized text made of its characters.

Both are saved as ``transformers`` tokenizer folders (``tokenizer.json`` + ``tokenizer_config.json``)
that ``load_tokenizer`` reads back with ``local_files_only=True``.

Every tokenizer the package loads (prepare's, a params folder's, Whisper's for ASR) goes through
``load_tokenizer``: custom code off (``trust_remote_code=False``), and a folder whose ``tokenizer_config.json``
or ``config.json`` holds an ``auto_map`` (a module of its own that transformers would offer to run) refused
before transformers reads it.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from microemo_jax.data import prompt

LLM_SPECIALS = ('<unk>', '<s>', '</s>', '<pad>')
QFORMER_SPECIALS = ('[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]')
_TOKENIZER_FILES = ('tokenizer.json', 'tokenizer.model', 'vocab.json', 'vocab.txt', 'tokenizer_config.json')
_BYTE_ALPHABET = 256
_CONFIG_FILES = ('tokenizer_config.json', 'config.json')   # the files transformers takes an auto_map from


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


def load_tokenizer(path: str, *, what: str = 'LLM'):
    """A ``transformers`` tokenizer from a local folder, never from the network."""
    if not path or not os.path.isdir(path):
        raise FileNotFoundError(f"{what} tokenizer folder {path!r} does not exist: pass a local Hugging Face "
                                f"tokenizer folder (tokenizer.json or tokenizer.model, tokenizer_config.json)")
    present = [f for f in _TOKENIZER_FILES if os.path.isfile(os.path.join(path, f))]
    if not present:
        raise ValueError(f"{what} tokenizer folder {path!r} holds none of {', '.join(_TOKENIZER_FILES)}: it is not "
                         f"a Hugging Face tokenizer folder")
    refuse_custom_code(path, what)
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except Exception as e:  # transformers raises many types here; name the folder and the cause
        raise ValueError(f"{what} tokenizer in {path!r} (files: {', '.join(present)}) could not be loaded offline: "
                         f"{type(e).__name__}: {e}") from e


def _template_texts() -> list[str]:
    """Prompt text every clip carries, so the demo BPE learns it as few tokens."""
    sentences = prompt.timestamp_sentences([t / 2 for t in range(0, 121)])
    return [f"[INST] <<SYS>>\n{prompt.DEFAULT_SYSTEM}\n<</SYS>>\n\n<Video></Video> <Audio></Audio> The video "
            f"contains 8 frames sampled at 0.0, 0.5, 1.0 seconds. Transcribed speech: 0.0 - 1.5 seconds, "
            f"The subtitle of this video is: <Subtitle></Subtitle>. [/INST]",
            prompt.DESCRIPTION_QUESTION, prompt.OV_QUESTION, prompt.ov_answer(['neutral'])] + sentences


def _save(tok, out: str, specials: dict[str, str]) -> None:
    """Save as a transformers folder; the special-token ids also go into tokenizer_config.json."""
    PreTrainedTokenizerFast(tokenizer_object=tok, **specials).save_pretrained(out)
    config_path = os.path.join(out, 'tokenizer_config.json')
    with open(config_path, encoding='utf-8') as f:
        config = json.load(f)
    config.update({f'{key}_id': tok.token_to_id(token) for key, token in specials.items()})
    with open(config_path, 'w', encoding='utf-8') as f:
        json.dump(config, f, indent=2, ensure_ascii=False)


def _timestamp_wordpiece(texts: list[str], vocab_size: int):
    """A BERT-style WordPiece whose vocabulary is chosen deterministically, for the timestamp sentences.

    ``tokenizers``' WordPieceTrainer breaks frequency ties in hash order, so the same texts gave
    different vocabularies from run to run. The vocabulary is chosen here by a fixed priority instead:
    special tokens; characters by frequency, each as a word start and as a ``##`` continuation (so any
    text made of them round-trips); the pieces of the time values (``##.0``-``##.9``, ``0``-``99``); the
    template's words; then the most frequent words of ``texts`` (ties broken alphabetically).
    """

    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                            lowercase=True)
    split = pre_tokenizers.WhitespaceSplit()
    template = prompt.timestamp_sentences([0.0])[0]

    def words(text):
        return [w for w, _ in split.pre_tokenize_str(normalizer.normalize_str(text))]
    counts = Counter(w for text in texts for w in words(text))
    chars = Counter()
    for word, n in counts.items():
        for c in word:
            chars[c] += n
    first = list(dict.fromkeys(normalizer.normalize_str(template + '0123456789').replace(' ', '')))
    rest = sorted((c for c in chars if c not in first), key=lambda c: (-chars[c], c))
    n_chars = min(len(first) + len(rest), max(len(first), (vocab_size - len(QFORMER_SPECIALS)) // 4))
    alphabet = (first + rest)[:n_chars]
    ordered = (list(QFORMER_SPECIALS) + [p for c in alphabet for p in (c, '##' + c)]
               + [f'##.{d}' for d in range(10)] + [str(i) for i in range(100)] + words(template)
               + sorted(counts, key=lambda w: (-counts[w], w)))
    vocab: dict[str, int] = {}
    for piece in ordered:
        if len(vocab) == vocab_size:
            break
        vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token='[UNK]', continuing_subword_prefix='##'))
    tok.normalizer = normalizer
    tok.pre_tokenizer = split
    tok.decoder = decoders.WordPiece(prefix='##', cleanup=False)
    tok.post_processor = processors.TemplateProcessing(
        single='[CLS] $A [SEP]', pair='[CLS] $A [SEP] $B:1 [SEP]:1',
        special_tokens=[('[CLS]', vocab['[CLS]']), ('[SEP]', vocab['[SEP]'])])
    return tok


def train_demo_tokenizers(texts: Iterable[str], out_dir: str, *, llm_vocab_size: int = 512,
                          qformer_vocab_size: int = 512) -> tuple[str, str]:
    """Train the demo's LLM BPE and Q-Former WordPiece on ``texts``; returns (llm_dir, qformer_dir).

    Deterministic for the same texts. Vocabularies are at most the sizes asked for (the model's
    ``llm.vocab_size`` / ``image_qformer.vocab_size``).
    """
    texts = [str(t) for t in texts]
    if llm_vocab_size < _BYTE_ALPHABET + len(LLM_SPECIALS):
        raise ValueError(f"llm_vocab_size={llm_vocab_size} is too small: a byte-level BPE needs at least "
                         f"{_BYTE_ALPHABET + len(LLM_SPECIALS)} (256 bytes + {len(LLM_SPECIALS)} special tokens)")
    min_qformer = len(QFORMER_SPECIALS) + 64
    if qformer_vocab_size < min_qformer:
        raise ValueError(f"qformer_vocab_size={qformer_vocab_size} is too small: use at least {min_qformer}")

    llm = Tokenizer(models.BPE())
    llm.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    llm.decoder = decoders.ByteLevel()
    llm.train_from_iterator(_template_texts() + texts, trainers.BpeTrainer(
        vocab_size=llm_vocab_size, special_tokens=list(LLM_SPECIALS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    llm.post_processor = processors.TemplateProcessing(single='<s> $A', pair='<s> $A <s> $B',
                                                       special_tokens=[('<s>', llm.token_to_id('<s>'))])

    qformer = _timestamp_wordpiece(texts, qformer_vocab_size)

    for name, tok, size in (('LLM', llm, llm_vocab_size), ('Q-Former', qformer, qformer_vocab_size)):
        if tok.get_vocab_size() > size:
            raise RuntimeError(f"trained {name} vocabulary has {tok.get_vocab_size()} entries, more than {size}")
    llm_dir, qformer_dir = os.path.join(out_dir, 'llm_tokenizer'), os.path.join(out_dir, 'qformer_tokenizer')
    _save(llm, llm_dir, dict(unk_token='<unk>', bos_token='<s>', eos_token='</s>', pad_token='<pad>'))
    _save(qformer, qformer_dir, dict(pad_token='[PAD]', unk_token='[UNK]', cls_token='[CLS]', sep_token='[SEP]',
                                     mask_token='[MASK]'))
    return llm_dir, qformer_dir
