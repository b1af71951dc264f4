"""Emotion labels from generated text, offline and deterministic.

MER extracts labels from a description with GPT-3.5 or Qwen2.5, which drifts between versions and
needs a network or a second LLM. We read the OV answer sentence the model is trained to write
("The character's emotional state is a, b, c."); failing that, we find the bundled lexicon's words and
phrases, skip negated ones ("not happy") and map inflections to their label ("angrily" -> "angry").
EMER-style explanations describe every clue (often "calm" faces or "neutral" words) and then conclude
("Therefore, ... she is angry."): when the last concluding sentence names an emotion, only it counts.
Within a sentence, ``clauses.felt`` keeps the emotions the person feels: contrast, concession and
concealment ("She stays calm despite being furious inside") decide which named emotions are overruled.
"""
from __future__ import annotations

import functools
import re

from microemo_jax.metrics.clauses import Mention, felt
from microemo_jax.metrics.lexicon import LEXICON

_ANSWER = re.compile(
    r"(?:character(?:'s|s')?\s+emotional\s+states?|emotional\s+states?\s+of\s+the\s+(?:main\s+)?character)"
    r"\s*(?:is|are|was|were|:)\s*(?P<labels>[^\n]*?)\s*(?:\.(?=\s|$)|\n|$)",
    re.IGNORECASE)
_ITEM_SPLIT = re.compile(r"\s*(?:,|;|/|&|\band\b|\bor\b)\s*")
_LEADING = {'a', 'an', 'very', 'quite', 'slightly', 'extremely', 'somewhat', 'rather', 'highly', 'deeply',
            'really', 'mostly', 'mainly', 'also', 'bit', 'little', 'fairly', 'mildly', 'so', 'too', 'feeling'}
_NO_EMOTION = {'none', 'unknown', 'unclear', 'nothing', 'n/a', 'na', 'no emotion', 'no emotions'}
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*|[.,;:!?()\[\]\"]")
_NEGATIONS = {'not', 'no', 'never', 'nor', 'neither', 'without', 'cannot', 'lack', 'lacks', 'lacking', 'absence'}
_CONCLUSION = re.compile(r"(?:^|(?<=[.!?])\s+)(?:therefore|thus|hence|overall|in summary|in conclusion|to sum up|"
                         r"all in all)\b[^.!?]*", re.IGNORECASE)
_SCOPE_ENDS = {'but', 'though', 'although', 'however', 'yet', 'instead', 'while', 'whereas', 'because', 'so',
               'and', '.', ',', ';', ':', '!', '?', '(', ')', '[', ']', '"'}
_NEGATION_REACH = 4      # "does not seem to be happy": the cue is 4 words before the label


def _tokens(text: str) -> list[str]:
    text = text.lower().replace('\u2019', "'").replace('\u2018', "'").replace('-', ' ')
    return _TOKEN.findall(text)


def _is_negation(tok: str) -> bool:
    return tok in _NEGATIONS or tok.endswith("n't")


@functools.cache
def _index() -> dict[str, list[tuple[tuple[str, ...], str]]]:
    """first token -> [(form tokens, label)], longest form first, so 'ill at ease' beats 'at ease'."""
    index: dict[str, list] = {}
    for label, forms in LEXICON.items():
        for form in (label, *forms):
            toks = tuple(_tokens(form))
            index.setdefault(toks[0], []).append((toks, label))
    for entries in index.values():
        entries.sort(key=lambda e: -len(e[0]))
    return index


def _negated(tokens: list[str], i: int) -> bool:
    """Whether a negation cue governs the word at i: within reach, with no clause break in between."""
    for j in range(i - 1, max(-1, i - 1 - _NEGATION_REACH), -1):
        tok = tokens[j]
        if tok in _SCOPE_ENDS:
            return False
        if _is_negation(tok):
            return not (tok == 'not' and tokens[j + 1] == 'only')   # "not only angry but ..." affirms
    return False


def _clean_item(item: str) -> str:
    words = item.strip().strip('\'"[]()*.!?').strip().lower().replace('\u2019', "'").split()
    while words and words[0] in _LEADING:
        words = words[1:]
    item = ' '.join(words)
    if not item or item in _NO_EMOTION or _is_negation(words[0]):
        return ''
    return item


def _from_answer(text: str) -> list[str] | None:
    matches = list(_ANSWER.finditer(text.replace('\u2019', "'")))
    if not matches:
        return None
    items = (_clean_item(x) for x in _ITEM_SPLIT.split(matches[-1].group('labels')))
    return list(dict.fromkeys(x for x in items if x))


def _from_lexicon(text: str) -> list[str]:
    tokens, index, mentions = _tokens(text), _index(), []
    i = 0
    while i < len(tokens):
        for form, label in index.get(tokens[i], ()):
            if tuple(tokens[i:i + len(form)]) == form:
                if not _negated(tokens, i):
                    mentions.append(Mention(i, i + len(form), label))
                i += len(form)
                break
        else:
            i += 1
    return list(dict.fromkeys(m.label for m in felt(tokens, mentions)))


def extract_labels(text: str) -> list[str]:
    """Labels stated in ``text``, in order of appearance, without duplicates; [] when none is stated.

    The answer sentence (the last one, if several) wins and its labels are kept as written: the
    vocabulary is open. Otherwise lexicon words and phrases are mapped to their base label.
    """
    if not isinstance(text, str):
        raise TypeError(f"extract_labels needs a string, got {type(text).__name__}")
    answer = _from_answer(text)
    if answer is not None:
        return answer
    conclusions = [m.group(0) for m in _CONCLUSION.finditer(text)]
    if conclusions:
        concluded = _from_lexicon(conclusions[-1])
        if concluded:
            return concluded
    return _from_lexicon(text)
