"""The clips stage 3 learns and scores on: a split's records of the rollout question, with their gold labels.

A prepared clip may hold two records, its explanation (``NAME``) and its OV-label answer (``NAME#ov``); stage 3
answers one question (``rl.question``) or both, so the Grain pipeline reads a view of the split that holds only
those records, and the rewards read the gold labels (the record's ``openset``) by record name. Records
without gold labels cannot be rewarded and are left out, said so by the count. The longest prompt sets the
run's prompt width: batches are padded to ``data.max_seq_len`` for prompt and answer, and stage 3 cuts them to
the prompts alone (its answers are sampled after them), so no step pays for the training answers' room.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from microemo_jax.data.records.record import text_field
from microemo_jax.runs.rollouts import question_of


class RecordView(Sequence):
    """The records of ``source`` at ``indices``, as a random-access source for ``pipeline.make_iterator``."""

    def __init__(self, source, indices: Sequence[int]):
        self.source, self.indices = source, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.source[j] for j in self.indices[i]]
        return self.source[self.indices[i]]


def gold_of(record) -> list[str] | None:
    """A record's gold OV labels (its ``openset`` field, a JSON list), or None when it has none."""
    text = text_field(record.get('openset', ''))
    if not text:
        return None
    labels = json.loads(text)
    return [str(x) for x in labels] if labels else None


def prompt_length(record) -> int:
    """Tokens of a record's prompt: up to its first answer token (``loss_mask``), or all of them."""
    answer = np.asarray(record['loss_mask'], bool)
    return int(np.argmax(answer)) if answer.any() else len(answer)


def question_records(source, question: str) -> tuple[RecordView, dict[str, list[str]], int, int]:
    """(the view of ``question``'s records ('description', 'ov' or 'both') that have gold labels, {record name: gold
    labels}, records left out,
    the longest prompt among the kept records in tokens)."""
    keep, gold, left_out, longest = [], {}, 0, 0
    for index in range(len(source)):
        rec = source[index]
        name = text_field(rec['name'])
        if question not in ('both', question_of(name)):
            continue
        labels = gold_of(rec)
        if labels is None:
            left_out += 1
            continue
        keep.append(index)
        gold[name] = labels
        longest = max(longest, prompt_length(rec))
    return RecordView(source, keep), gold, left_out, longest
