"""Prepared clips -> explanations: the shared core of ``evaluate``, ``predict`` and ``serve``.

A prepared record carries its prompt followed by the training answer (``loss_mask`` marks the answer).
For generation the answer is cut off, the clip is decoded and padded exactly as the training pipeline
does it (``pipeline.BatchAssembler``, no augmentation), and a fixed-size batch goes through one compiled
``generate``: every batch has the same shapes, so the whole run compiles once.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import jax
import numpy as np

from microemo_jax.data import pipeline
from microemo_jax.data.shapes import DataShapes
from microemo_jax.data.tokenizers import eos_token_ids, tokenizer_identity
from microemo_jax.generate import generate
from microemo_jax.inference.settings import GenerationSettings
from microemo_jax.params import TOKENIZER_DIRS


def strip_answer(example: dict) -> dict:
    """Keep only the prompt of one un-batched example: answer tokens become padding (right-padded prompt)."""
    out = dict(example)
    answer = np.asarray(example['loss_mask'], bool)
    if answer.any():
        start = int(np.argmax(answer))
        keep = np.arange(answer.shape[0]) < start
        out['input_ids'] = np.where(keep, example['input_ids'], 0).astype(np.int32)
        out['attention_mask'] = np.asarray(example['attention_mask'], bool) & keep
    out['loss_mask'] = np.zeros_like(answer)
    return out


def prompt_examples(records: Sequence[dict], cfg, tokenizer: str = '') -> list[dict]:
    """Decoded, padded, answer-free examples (numpy, no batch axis) for prepared records; with ``tokenizer``
    (an identity, ``data.tokenizers.tokenizer_identity``) records made by another tokenizer are refused."""
    shapes = dataclasses.replace(DataShapes.from_config(cfg), tokenizer=tokenizer)
    return [strip_answer(pipeline.example_from_record(rec, shapes)) for rec in records]


def stack(examples: Sequence[dict], batch_size: int) -> tuple[dict, int]:
    """A batch of exactly ``batch_size`` rows (the last example repeated as filler); the number of real rows."""
    n = len(examples)
    if not 0 < n <= batch_size:
        raise ValueError(f"need 1..{batch_size} examples for a batch, got {n}")
    rows = list(examples) + [examples[-1]] * (batch_size - n)
    return {k: np.stack([r[k] for r in rows]) for k in rows[0] if k != 'names'}, n


def decode_answer(tokenizer, ids, eos_ids: Sequence[int] | None = None) -> str:
    """Generated ids -> text, cut at the first end-of-sequence token (``eos_ids``, default the tokenizer's)."""
    ids = [int(i) for i in np.asarray(ids).reshape(-1)]
    eos_ids = set(eos_ids) if eos_ids is not None else {tokenizer.eos_token_id} - {None}
    ends = [i for i, token in enumerate(ids) if token in eos_ids]
    if ends:
        ids = ids[:ends[0]]
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


class Explainer:
    """A loaded parameter folder plus generation settings; ``explain(records)`` returns one text per record."""

    def __init__(self, folder, settings: GenerationSettings = GenerationSettings(), *, batch_size: int = 1):
        self.folder, self.settings, self.batch_size = folder, settings, batch_size
        cfg = folder.cfg
        room = cfg.model.llm.max_position_embeddings - cfg.data.max_seq_len
        if settings.max_new_tokens > room:
            raise ValueError(f"max_new_tokens={settings.max_new_tokens} does not fit: the prompt takes up to "
                             f"data.max_seq_len={cfg.data.max_seq_len} of the LLM's "
                             f"{cfg.model.llm.max_position_embeddings} positions (at most {room} new tokens)")
        self._calls = 0  # batches generated so far: each gets its own sampling key
        # the ids that end an answer: generation_config.json's (an instruct model ends a turn with its own token)
        llm_dir = os.path.join(folder.path, TOKENIZER_DIRS['llm'])
        self.eos_ids = eos_token_ids(llm_dir, folder.llm_tokenizer)
        self.tokenizer_identity = tokenizer_identity(llm_dir)  # records must come from the folder's tokenizer
        if settings.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {settings.max_new_tokens}")

    @property
    def cfg(self):
        return self.folder.cfg

    def generate_batch(self, batch: dict, rng_index: int = 0) -> np.ndarray:
        """(batch_size, max_new_tokens) generated ids for a stacked batch of examples."""

        s = self.settings
        # Drop the right padding every row shares: generate pads the prompt to its own length buckets, so a
        # short prompt does not pay for data.max_seq_len, and a few buckets serve every batch.
        width = int(np.max(np.nonzero(np.asarray(batch['attention_mask']).any(axis=0))[0], initial=0)) + 1
        batch = {**batch, **{k: np.asarray(batch[k])[:, :width] for k in ('input_ids', 'attention_mask', 'loss_mask')
                             if k in batch}}
        rng = jax.random.fold_in(jax.random.key(s.seed), rng_index) if s.temperature > 0 else None
        out = generate(self.folder.model, batch['input_ids'], batch['attention_mask'],
                       max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                       eos_token_id=self.eos_ids or None, rng=rng, batch=batch)
        return np.asarray(jax.device_get(out))

    def explain_examples(self, examples: Sequence[dict], *, progress=None) -> list[str]:
        texts = []
        for i in range(0, len(examples), self.batch_size):
            batch, n = stack(examples[i:i + self.batch_size], self.batch_size)
            ids = self.generate_batch(batch, rng_index=self._calls)
            self._calls += 1
            texts += [decode_answer(self.folder.llm_tokenizer, row, self.eos_ids) for row in ids[:n]]
            if progress is not None:
                progress.update(n)
        return texts

    def explain(self, records: Sequence[dict], *, progress=None) -> list[str]:
        """Decodes one batch of records at a time: a split never sits decoded in memory at once."""
        texts = []
        for i in range(0, len(records), self.batch_size):
            texts += self.explain_examples(prompt_examples(records[i:i + self.batch_size], self.cfg,
                                                           self.tokenizer_identity), progress=progress)
        return texts
