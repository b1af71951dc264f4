"""Label extractors: a clip's free-text answer -> its labels and its sentiment, each result named by its maker.

MER-UniBench scores labels, not text. The official pipeline samples Qwen2.5-7B-Instruct twice per clip
(labels, then sentiment) at temperature 0.7, so its labels cannot be reproduced except from its caches.
We offer three extractors and report which one made every number:

* ``lexicon`` (default): ``extract.extract_labels`` (the answer sentence, else lexicon words read with
  negation, contrast and concealment) and ``valence.sentiment_of``. Deterministic and offline.
* ``cache``: AffectGPT's published ``*-openset.npz`` / ``*-openset-sentiment.npz``, to re-score published
  outputs exactly. It reads nothing from the text.
* ``llm:PATH``: an instruct checkpoint, decoded greedily with the official prompts (``protocol``). It needs
  the Qwen2.5 loader of the Qwen issue (#21), which this build does not have yet; asking for it says so.
"""
from __future__ import annotations

import os

from microemo_jax.metrics.extract import extract_labels
from microemo_jax.metrics.labels import split_list_string
from microemo_jax.metrics.official_files import load_prediction_cache, sentiment_cache_beside
from microemo_jax.metrics.valence import sentiment_of

LLM_PENDING = ("the llm:PATH extractor needs a Qwen2.5 instruct loader (the Qwen issue, #21), which this build "
               "does not have yet; use --extractor lexicon (deterministic) or cache (published outputs)")


class LexiconExtractor:
    """Ours: deterministic, offline; labels from ``extract_labels``, sentiment from the valence table."""
    name = 'lexicon'
    sentiment_name = 'lexicon'

    def labels(self, name: str, text: str) -> list[str]:
        return extract_labels(text)

    def sentiment(self, name: str, labels: list[str]) -> str:
        return sentiment_of(labels)


class CacheExtractor:
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


def make_extractor(spec: str = 'lexicon', *, openset_npz=None, sentiment_npz=None):
    """``lexicon``, ``cache`` (with ``openset_npz``; ``sentiment_npz`` defaults to the official file beside it)
    or ``llm:PATH``."""
    if spec == 'lexicon':
        return LexiconExtractor()
    if spec == 'cache':
        if openset_npz is None:
            raise ValueError("the cache extractor needs the official *-openset.npz of the checkpoint")
        return CacheExtractor(openset_npz, sentiment_npz)
    if spec.startswith('llm:'):
        if not spec[len('llm:'):]:
            raise ValueError("llm:PATH needs the checkpoint folder after 'llm:'")
        raise ValueError(LLM_PENDING)
    raise ValueError(f"unknown extractor {spec!r}; choose lexicon, cache or llm:PATH")
