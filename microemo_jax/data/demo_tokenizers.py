"""The demo's tokenizers, trained on the corpus text with the ``tokenizers`` library so that nothing is downloaded.

* the LLM's: byte-level BPE trained on the texts (any text round-trips exactly, no unknown bytes), in one of two
  styles (``data.demo_tokenizer``):
  - 'llama': LLaMA's special-token order ``<unk>``=0, ``<s>``=1, ``</s>``=2, plus ``<pad>``=3; ``<s>`` is
    prepended as LLaMA's tokenizer does; no chat template (prompts use the LLaMA-2 template, ``data/prompt.py``);
  - 'qwen': Qwen's ChatML specials ``<|endoftext|>`` (padding), ``<|im_start|>``, ``<|im_end|>`` (end of a
    turn, the eos), no bos, a ChatML ``chat_template.jinja`` and a ``generation_config.json`` giving the
    end-of-sequence ids, as a Qwen2.5/Qwen3 instruct folder has them;
* the image Q-Former's: a BERT-style lower-cased WordPiece (``[PAD]``=0, ``[UNK]``, ``[CLS]``, ``[SEP]``,
  ``[MASK]``, encodings wrapped in ``[CLS] ... [SEP]``) for the timestamp sentences, its vocabulary
  chosen deterministically (see ``_timestamp_wordpiece``). It splits on whitespace only (BERT also
  splits at punctuation, so "0.5" would decode as "0. 5"), which makes decode(encode(text)) ==
  text.lower() for whitespace-normalized text made of its characters.

Both are saved as ``transformers`` tokenizer folders (``tokenizer.json`` + ``tokenizer_config.json``)
that ``data.tokenizers.load_tokenizer`` reads back offline.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from microemo_jax.data import prompt
from microemo_jax.data.chat_template import CHAT_TEMPLATE_FILE

LLM_SPECIALS = ('<unk>', '<s>', '</s>', '<pad>')
QWEN_SPECIALS = ('<|endoftext|>', '<|im_start|>', '<|im_end|>')
QFORMER_SPECIALS = ('[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]')
STYLES = ('llama', 'qwen')
_BYTE_ALPHABET = 256
# ChatML, the format of Qwen2.5/Qwen3 instruct models: a default system turn, then each turn between
# <|im_start|>ROLE and <|im_end|>; the generation prompt opens the assistant's turn.
CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}\n"
    "{%- for message in messages %}{%- if message['role'] != 'system' %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}\n"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}\n")


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
                          qformer_vocab_size: int = 512, style: str = 'llama') -> tuple[str, str]:
    """Train the demo's LLM BPE (in ``style`` 'llama' or 'qwen') and Q-Former WordPiece on ``texts``; returns
    (llm_dir, qformer_dir).

    Deterministic for the same texts. Vocabularies are at most the sizes asked for (the model's
    ``llm.vocab_size`` / ``image_qformer.vocab_size``).
    """
    if style not in STYLES:
        raise ValueError(f"demo tokenizer style {style!r} must be one of {STYLES}")
    texts = [str(t) for t in texts]
    specials = LLM_SPECIALS if style == 'llama' else QWEN_SPECIALS
    if llm_vocab_size < _BYTE_ALPHABET + len(specials):
        raise ValueError(f"llm_vocab_size={llm_vocab_size} is too small: a byte-level BPE needs at least "
                         f"{_BYTE_ALPHABET + len(specials)} (256 bytes + {len(specials)} special tokens)")
    min_qformer = len(QFORMER_SPECIALS) + 64
    if qformer_vocab_size < min_qformer:
        raise ValueError(f"qformer_vocab_size={qformer_vocab_size} is too small: use at least {min_qformer}")

    llm = Tokenizer(models.BPE())
    llm.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    llm.decoder = decoders.ByteLevel()
    llm.train_from_iterator(_template_texts() + texts, trainers.BpeTrainer(
        vocab_size=llm_vocab_size, special_tokens=list(specials), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if style == 'llama':
        llm.post_processor = processors.TemplateProcessing(single='<s> $A', pair='<s> $A <s> $B',
                                                           special_tokens=[('<s>', llm.token_to_id('<s>'))])

    qformer = _timestamp_wordpiece(texts, qformer_vocab_size)

    for name, tok, size in (('LLM', llm, llm_vocab_size), ('Q-Former', qformer, qformer_vocab_size)):
        if tok.get_vocab_size() > size:
            raise RuntimeError(f"trained {name} vocabulary has {tok.get_vocab_size()} entries, more than {size}")
    llm_dir, qformer_dir = os.path.join(out_dir, 'llm_tokenizer'), os.path.join(out_dir, 'qformer_tokenizer')
    if style == 'llama':
        _save(llm, llm_dir, dict(unk_token='<unk>', bos_token='<s>', eos_token='</s>', pad_token='<pad>'))
    else:
        _save(llm, llm_dir, dict(eos_token='<|im_end|>', pad_token='<|endoftext|>'))
        with open(os.path.join(llm_dir, CHAT_TEMPLATE_FILE), 'w', encoding='utf-8') as f:
            f.write(CHATML_TEMPLATE)
        ids = {t: llm.token_to_id(t) for t in QWEN_SPECIALS}
        with open(os.path.join(llm_dir, 'generation_config.json'), 'w', encoding='utf-8') as f:
            json.dump({'eos_token_id': [ids['<|im_end|>'], ids['<|endoftext|>']],
                       'pad_token_id': ids['<|endoftext|>']}, f, indent=2)
    _save(qformer, qformer_dir, dict(pad_token='[PAD]', unk_token='[UNK]', cls_token='[CLS]', sep_token='[SEP]',
                                     mask_token='[MASK]'))
    return llm_dir, qformer_dir
