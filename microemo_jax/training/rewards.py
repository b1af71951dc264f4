"""Stage-3 rewards: each sampled answer scored by the project's own emotion metrics, on host, in plain Python.

A reward is a function ``(Completion, RewardContext) -> float`` registered under a name (``@register('name')``);
the config names the ones a run uses and weighs them (``rl.rewards``, ``rl.weights``). The built-in ones:

* ``ov``: the answer's MER2024-OV score against the clip's gold labels, ``(accuracy_s + recall_s) / 2`` of the
  one sample (``metrics.score_ov`` on ``metrics.extract_labels`` of the answer, the same extraction and synonym
  grouping ``evaluate`` uses), so the reward is what the held-out score averages.
* ``wheel``: the sample's emotion-wheel F (``metrics.score_wheel``, mean of levels 1 and 2 over the wheels);
  needs ``rl.wheel`` (MER's ``wheel_mapping.npz`` or its JSON form).
* ``format``: 1 when the answer ends in the label form its question asks for and was not cut off: for the
  explanation question, at least one clue sentence and then a concluding sentence ("Therefore, ...") that
  names an emotion; for the OV question, the one sentence "The character's emotional state is a, b." and nothing
  else. It keeps explanations explanations: an answer that drops the clues and lists labels scores 0 here.
* ``length``: 0 up to ``rl.length_target`` tokens, then falling linearly to -1 at ``max_new_tokens``; an answer
  cut off before its end-of-sequence token gets -1.

A reward that raises or returns a non-number gives 0 for that sample and is counted (``reward_errors``): a bad
or unparseable answer never stops training. A non-finite value is passed on as such; the loop skips that
sample's whole group and counts it.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable, Sequence

from microemo_jax.metrics import extract_labels, score_ov, score_wheel

QUESTIONS = ('description', 'ov')


@dataclasses.dataclass(frozen=True)
class Completion:
    """One sampled answer and what its rewards need to know about it."""
    name: str                   # the video's name (keys per-sample synonym tables)
    text: str                   # the decoded answer, up to its end-of-sequence token
    gold: tuple[str, ...]       # the clip's gold OV labels
    question: str               # 'description' or 'ov': the prompt it answered
    tokens: int                 # answer tokens, the end-of-sequence token included
    ended: bool                 # the end-of-sequence token came within max_new_tokens


@dataclasses.dataclass(frozen=True)
class RewardContext:
    synonyms: object = None     # what metrics.load_synonyms returns (None: the bundled table)
    wheel: object = None        # what metrics.load_wheel returns (None: no wheel reward)
    max_new_tokens: int = 256
    length_target: int = 0      # 0: the whole max_new_tokens is free


RewardFn = Callable[[Completion, RewardContext], float]
REWARDS: dict[str, RewardFn] = {}


def register(name: str):
    """Decorator: make a reward function available to ``rl.rewards`` under ``name``."""
    def add(fn: RewardFn) -> RewardFn:
        if name in REWARDS and REWARDS[name] is not fn:
            raise ValueError(f"a reward named {name!r} is already registered ({REWARDS[name].__qualname__})")
        REWARDS[name] = fn
        return fn
    return add


@register('ov')
def ov_reward(c: Completion, ctx: RewardContext) -> float:
    if not c.gold:
        return 0.0
    return float(score_ov({c.name: list(c.gold)}, {c.name: extract_labels(c.text)}, ctx.synonyms)['avg'])


@register('wheel')
def wheel_reward(c: Completion, ctx: RewardContext) -> float:
    if ctx.wheel is None:
        raise ValueError("the 'wheel' reward needs rl.wheel (MER's wheel_mapping.npz or its JSON form)")
    if not c.gold:
        return 0.0
    return float(score_wheel({c.name: list(c.gold)}, {c.name: extract_labels(c.text)}, ctx.wheel)['ew_mean'])


_SENTENCE_END = re.compile(r'(?<=[.!?])\s+')
_CONCLUSION = re.compile(r"^(?:therefore|thus|hence|so|overall|in summary|in conclusion|to sum up|all in all)\b",
                         re.IGNORECASE)
_OV_ANSWER = re.compile(r"^the character's emotional state is (?P<labels>[^.]+)\.$", re.IGNORECASE)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


@register('format')
def format_reward(c: Completion, ctx: RewardContext) -> float:
    if not c.ended:
        return 0.0
    parts = sentences(c.text.replace('\u2019', "'"))
    if c.question == 'ov':
        return float(len(parts) == 1 and bool(_OV_ANSWER.match(parts[0])) and bool(extract_labels(parts[0])))
    if c.question != 'description':
        raise ValueError(f"unknown question kind {c.question!r}; expected one of {QUESTIONS}")
    return float(len(parts) >= 2 and parts[-1].endswith('.') and bool(_CONCLUSION.match(parts[-1]))
                 and bool(extract_labels(parts[-1])))


@register('length')
def length_reward(c: Completion, ctx: RewardContext) -> float:
    if not c.ended:
        return -1.0
    target = ctx.length_target or ctx.max_new_tokens
    if c.tokens <= target:
        return 0.0
    return -min(1.0, (c.tokens - target) / max(ctx.max_new_tokens - target, 1))


def check_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise ValueError(f"rl.rewards names unknown rewards {unknown}; registered: {sorted(REWARDS)}")


def score(completions: Sequence[Completion], names: Sequence[str], weights: dict[str, float],
          ctx: RewardContext) -> tuple[list[float], dict[str, list[float]], list[str]]:
    """(total reward per completion, each component per completion, error messages).

    The total is ``sum(weights[name] * component)``; a component that raises or returns a non-number scores 0
    (its message is returned); a non-finite component makes the total non-finite (the loop skips the group).
    """
    check_names(names)
    parts: dict[str, list[float]] = {n: [] for n in names}
    errors: list[str] = []
    for c in completions:
        for n in names:
            try:
                value = float(REWARDS[n](c, ctx))
            except Exception as e:  # noqa: BLE001  a reward must never stop training: 0, counted, reported
                errors.append(f"reward {n!r} on {c.name!r}: {type(e).__name__}: {e}")
                value = 0.0
            parts[n].append(value)
    totals = [sum(float(weights.get(n, 1.0)) * parts[n][i] for n in names) for i in range(len(completions))]
    return totals, parts, errors

