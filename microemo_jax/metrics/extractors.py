"""Label extractors: a clip's free-text answer -> its labels and its sentiment, each result named by its maker.

MER-UniBench scores labels, not text. The official pipeline samples Qwen2.5-7B-Instruct twice per clip
(labels, then sentiment) at temperature 0.7, so its labels cannot be reproduced except from its caches.
We offer three extractors and report which one made every number:

* ``lexicon`` (default): ``extract.extract_labels`` (the answer sentence, else lexicon words read with
  negation, contrast and concealment) and ``valence.sentiment_of``. Deterministic and offline.
* ``cache``: AffectGPT's published ``*-openset.npz`` / ``*-openset-sentiment.npz``, to re-score published
  outputs exactly. It reads nothing from the text.
* ``llm:PATH``: an instruct checkpoint, decoded greedily with the official prompts (``protocol``). It runs a
  model (JAX), which this layer does not import: ``inference/llm_extractor.py`` builds it and registers it here
  (``register_extractor``) when it is imported, as ``evaluate --bench`` does. ``labels_from_answer`` (how its
  answer is read) lives here, with the other text rules.

Every extractor answers one clip (``labels``, ``sentiment``) or many at once (``extract_batch``: what the
benchmark calls, and what lets the LLM extractor batch its prompts).
"""
from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence

from microemo_jax.metrics.extract import extract_labels
from microemo_jax.metrics.labels import split_list_string
from microemo_jax.metrics.official_files import load_prediction_cache, sentiment_cache_beside
from microemo_jax.metrics.valence import sentiment_of

LLM_UNREGISTERED = ("the llm:PATH extractor runs a model (JAX), which microemo_jax.metrics does not import: "
                    "import microemo_jax.inference.llm_extractor first (it registers llm:PATH here; evaluate --bench "
                    "does), or use --extractor lexicon (deterministic) or cache (published outputs)")
_FACTORIES: dict[str, Callable] = {}
_LIST = re.compile(r'\[[^\[\]]*\]')


def register_extractor(kind: str, factory: Callable) -> None:
    """Let ``make_extractor('KIND:ARG', **options)`` call ``factory(ARG, **options)``: the hook through which an
    extractor of a higher layer (``llm:``, ``inference/llm_extractor.py``) is offered to callers of this one."""
    _FACTORIES[kind] = factory


@dataclasses.dataclass(frozen=True)
class Extraction:
    """One clip's labels and sentiment. ``answer``: what the extractor read them from, where it is not the
    clip's own text (an LLM's cleaned reply to the label prompt); ``unread``: the reply held no list, so the
    clip has no labels (counted, never an exception)."""
    labels: list[str]
    sentiment: str
    answer: str | None = None
    unread: bool = False


class Extractor:
    """What every extractor offers: one clip at a time, or a batch of clips (``extract_batch``; ``batch_size``
    is how many clips a caller best hands over at once)."""
    name = ''
    sentiment_name = ''
    batch_size = 256

    def labels(self, name: str, text: str) -> list[str] | None:
        raise NotImplementedError

    def sentiment(self, name: str, labels: list[str] | None) -> str | None:
        raise NotImplementedError

    def extract_batch(self, names: Sequence[str], texts: Sequence[str]) -> list[Extraction]:
        """Labels and sentiment of each (name, text); one clip at a time unless an extractor batches."""
        out = []
        for name, text in zip(names, texts):
            labels = self.labels(name, text) or []
            out.append(Extraction(labels, self.sentiment(name, labels)))
        return out

    def describe(self) -> dict:
        """What made the labels and the sentiments (the table and every score.json name it)."""
        return {'labels': self.name, 'sentiment': self.sentiment_name}

    def identity(self):
        """What a finished score depends on (``evaluate --bench`` redoes a dataset when it changes)."""
        return self.name


class LexiconExtractor(Extractor):
    """Ours: deterministic, offline; labels from ``extract_labels``, sentiment from the valence table."""
    name = 'lexicon'
    sentiment_name = 'lexicon'

    def labels(self, name: str, text: str) -> list[str]:
        return extract_labels(text)

    def sentiment(self, name: str, labels: list[str]) -> str:
        return sentiment_of(labels)


class CacheExtractor(Extractor):
    """The official caches. ``labels``/``sentiment`` return None for a clip the cache does not hold.

    Without a sentiment cache the sentiment comes from the valence table, and ``sentiment_name`` says so.
    """
    name = 'cache'

    def __init__(self, openset_npz: str | os.PathLike, sentiment_npz: str | os.PathLike | None = None):
        self.openset = load_prediction_cache(openset_npz)
        if sentiment_npz is None and os.path.isfile(sentiment_cache_beside(openset_npz)):
            sentiment_npz = sentiment_cache_beside(openset_npz)
        self.sentiments = load_prediction_cache(sentiment_npz) if sentiment_npz is not None else None
        self.sentiment_name = 'cache' if self.sentiments is not None else 'lexicon'

    def labels(self, name: str, text: str | None = None) -> list[str] | None:
        return split_list_string(self.openset[name]) if name in self.openset else None

    def sentiment(self, name: str, labels: list[str] | None = None) -> str | None:
        if self.sentiments is not None:
            return self.sentiments.get(name)
        return None if labels is None else sentiment_of(labels)


def labels_from_answer(answer: str) -> list[str] | None:
    """The labels in an LLM's (cleaned) reply to the official label prompt, or None when it holds no list.

    A reply that is one list, as the prompt's examples ask (``[happy, sad]``), splits exactly as the official
    scorer splits it (``split_list_string``). Otherwise the first ``[...]`` in it is the list (the official
    split would keep the words around it as labels: ``[sad].`` gives ``sad].``); a reply without one (a
    garbled or cut-off answer) gives None: no labels, counted by the caller.
    """
    found = _LIST.search(answer)
    return None if found is None else split_list_string(found.group(0))


def make_extractor(spec: str = 'lexicon', *, openset_npz=None, sentiment_npz=None, **options):
    """``lexicon``, ``cache`` (with ``openset_npz``; ``sentiment_npz`` defaults to the official file beside it)
    or ``llm:PATH`` (once registered; ``options`` go to its factory)."""
    if spec == 'lexicon':
        return LexiconExtractor()
    if spec == 'cache':
        if openset_npz is None:
            raise ValueError("the cache extractor needs the official *-openset.npz of the checkpoint")
        return CacheExtractor(openset_npz, sentiment_npz)
    kind, sep, arg = spec.partition(':')
    if sep and kind == 'llm':
        if not arg:
            raise ValueError("llm:PATH needs the checkpoint folder after 'llm:'")
        if kind not in _FACTORIES:
            raise ValueError(LLM_UNREGISTERED)
    if sep and kind in _FACTORIES:
        return _FACTORIES[kind](arg, **options)
    raise ValueError(f"unknown extractor {spec!r}; choose lexicon, cache or llm:PATH")
