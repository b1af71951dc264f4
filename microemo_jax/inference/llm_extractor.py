"""``llm:PATH``: labels and sentiments read from answers by an instruct checkpoint, greedily, with the official prompts.

MER-UniBench's own extraction (AffectGPT ``evaluation-scoreonly.py``) asks Qwen2.5-7B-Instruct two questions per
clip: the label prompt on the model's answer, then the sentiment prompt on the labels it replied
(``metrics/protocol.py`` holds both verbatim, with their source). It samples at temperature 0.7; we decode
greedily, so the same answers always give the same labels. Everything else is as there:

* each prompt is the only, user, message of a chat, wrapped in the checkpoint's own chat template
  (``chat_template.jinja`` or ``tokenizer_config.json``, rendered in Jinja's sandbox, ``data/chat_template.py``)
  with the template's default system turn, as ``apply_chat_template(..., add_generation_prompt=True)`` writes it
  (thinking off, for templates that have it); the tokenizer and the end-of-turn ids (``generation_config.json``)
  are the folder's own, loaded offline, and a folder that asks to run its own code (``auto_map``) is refused;
* a reply is cut at the first end id and tidied by the official clean-up (``protocol.clean_response``);
* the sentiment prompt gets the cleaned label reply verbatim (the official ``-openset`` cache string), and the
  cleaned sentiment reply is the sentiment, verbatim (WAF reads ``positive``/``negative``/``neutral`` and counts
  anything else as neutral and as an unknown sentiment).

Labels are the reply's list (``metrics.extractors.labels_from_answer``); a reply without one gives no labels and
is marked ``unread`` (the benchmark counts them), never an exception. Prompts go ``batch_size`` at a time (the
last batch filled up by repeating its last prompt) through ``generate``, whose prompt-length buckets keep the
compiled programs to one per bucket and question. Weights load on the first batch (bfloat16 by default, as the
official pipeline runs the checkpoint), so a resumed benchmark with nothing left to do never loads them.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from microemo_jax.data.chat_template import read_chat_template, render
from microemo_jax.data.tokenizers import eos_token_ids, load_tokenizer, tokenizer_identity
from microemo_jax.generate import generate
from microemo_jax.hf import load_llm
from microemo_jax.inference.bench_data import digest
from microemo_jax.inference.explainer import decode_answer
from microemo_jax.metrics.extractors import Extraction, Extractor, labels_from_answer, register_extractor
from microemo_jax.metrics.protocol import clean_response, label_prompt, sentiment_prompt

DTYPES = {'bfloat16': jnp.bfloat16, 'float32': jnp.float32}


class LLMExtractor(Extractor):
    """An instruct checkpoint folder (config.json, safetensors, tokenizer files, chat template) as an extractor.

    ``label_tokens`` / ``sentiment_tokens`` bound each reply (a label list is a few dozen tokens, a sentiment
    one word; a reply cut off before its ``]`` has no labels); ``dtype`` is the weights' and the compute's."""

    def __init__(self, path: str, *, batch_size: int = 16, label_tokens: int = 128, sentiment_tokens: int = 16,
                 dtype: str = 'bfloat16'):
        if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, 'config.json')):
            raise FileNotFoundError(f"llm:{path}: not a checkpoint folder (config.json and safetensors, with its "
                                    f"tokenizer files and chat template), e.g. a Qwen2.5-7B-Instruct download")
        if dtype not in DTYPES:
            raise ValueError(f"llm extractor dtype {dtype!r} must be one of {sorted(DTYPES)}")
        if min(batch_size, label_tokens, sentiment_tokens) < 1:
            raise ValueError("llm extractor: batch_size, label_tokens and sentiment_tokens must be >= 1")
        self.path = os.path.abspath(path)
        self.name = self.sentiment_name = 'llm:' + os.path.basename(os.path.normpath(self.path))
        self.batch_size, self.dtype = batch_size, dtype
        self.label_tokens, self.sentiment_tokens = label_tokens, sentiment_tokens
        self.tokenizer = load_tokenizer(self.path, what=self.name)          # refuses an auto_map
        self.template = read_chat_template(self.path)
        if self.template is None:
            raise ValueError(f"{self.name}: {self.path} has no chat template (chat_template.jinja or "
                             f"tokenizer_config.json's chat_template): the official prompts are chat turns of an "
                             f"instruct model; use the instruct checkpoint's folder")
        self.eos_ids = eos_token_ids(self.path, self.tokenizer)
        if not self.eos_ids:
            raise ValueError(f"{self.name}: {self.path} names no end-of-sequence id (generation_config.json or the "
                             f"tokenizer's eos token), so a reply would never end")
        self._model = None

    @property
    def model(self):
        """The checkpoint's LLM, loaded on first use; its vocabulary must hold every token id of the tokenizer."""
        if self._model is None:
            model = load_llm(self.path, dtype=DTYPES[self.dtype], param_dtype=DTYPES[self.dtype])
            if len(self.tokenizer) > model.cfg.vocab_size:
                raise ValueError(f"{self.name}: the tokenizer has {len(self.tokenizer)} tokens but the model's "
                                 f"vocab_size is {model.cfg.vocab_size}: they are not one checkpoint's")
            self._model = model
        return self._model

    def prompt_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        """Each prompt as the only user message of a chat in the folder's template, with the generation prompt,
        as token ids (what transformers' apply_chat_template(..., add_generation_prompt=True) gives)."""
        specials = {k: v for k, v in (('bos_token', self.tokenizer.bos_token), ('eos_token', self.tokenizer.eos_token))
                    if isinstance(v, str)}
        return [self.tokenizer(render(self.template, [{'role': 'user', 'content': p}], add_generation_prompt=True,
                                      enable_thinking=False, **specials), add_special_tokens=False)['input_ids']
                for p in prompts]

    def ask(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        """Each prompt's greedy reply, cut at the end id and cleaned as the official pipeline cleans it."""
        replies = []
        for start in range(0, len(prompts), self.batch_size):
            ids = self.prompt_ids(prompts[start:start + self.batch_size])
            n = len(ids)
            ids += [ids[-1]] * (self.batch_size - n)            # one batch shape: the filler rows are dropped
            width = max(len(row) for row in ids)
            tokens = np.zeros((self.batch_size, width), np.int32)
            mask = np.zeros((self.batch_size, width), bool)
            for i, row in enumerate(ids):
                tokens[i, :len(row)], mask[i, :len(row)] = row, True
            out = np.asarray(jax.device_get(generate(self.model, tokens, mask, max_new_tokens=max_new_tokens,
                                                     eos_token_id=self.eos_ids)))
            replies += [clean_response(decode_answer(self.tokenizer, row, self.eos_ids)) for row in out[:n]]
        return replies

    def extract_batch(self, names: Sequence[str], texts: Sequence[str]) -> list[Extraction]:
        """The two official calls over a batch of answers: labels from each answer, then the sentiment of each
        label reply."""
        label_replies = self.ask([label_prompt(t) for t in texts], self.label_tokens)
        sentiments = self.ask([sentiment_prompt(r) for r in label_replies], self.sentiment_tokens)
        out = []
        for reply, sentiment in zip(label_replies, sentiments):
            labels = labels_from_answer(reply)
            out.append(Extraction(labels or [], sentiment, answer=reply, unread=labels is None))
        return out

    def labels(self, name: str, text: str) -> list[str]:
        return labels_from_answer(self.ask([label_prompt(text)], self.label_tokens)[0]) or []

    def sentiment(self, name: str, labels: list[str] | None) -> str:
        return self.ask([sentiment_prompt('[' + ', '.join(labels or []) + ']')], self.sentiment_tokens)[0]

    def identity(self) -> dict:
        """The checkpoint (its files by name, size and time; its tokenizer and template by content) and the
        decoding settings: a finished benchmark score is redone when any of them changes."""
        return {'name': self.name, 'files': digest(self.path), 'tokenizer': tokenizer_identity(self.path),
                'dtype': self.dtype, 'label_tokens': self.label_tokens, 'sentiment_tokens': self.sentiment_tokens,
                'decoding': 'greedy'}


register_extractor('llm', LLMExtractor)
