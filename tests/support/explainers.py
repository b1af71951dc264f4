"""Explainers whose texts a test knows, so evaluate and predict can be checked against numbers worked out by hand.

``ScriptedExplainer`` answers each clip with the text a test wrote for it (no model runs: for the scoring,
grouping, grounding and face-shuffling around generation, which is what those tests check); it keeps the
records it was given. ``AppendSentence`` wraps the real explainer and ends every answer with a fixed label
sentence: generation still runs, and the labels are known.
"""
from __future__ import annotations

import numpy as np


def _name(rec) -> str:
    name = rec['name']
    if isinstance(name, np.ndarray):
        name = name.item()
    name = name.decode('utf-8') if isinstance(name, bytes) else str(name)
    return name.split('#', 1)[0]


class ScriptedExplainer:
    """``explain(records)``: ``texts[video name]`` for each record (a KeyError names a clip with no text)."""

    def __init__(self, texts: dict[str, str], batch_size: int = 1):
        self.texts, self.batch_size = dict(texts), batch_size
        self.records: list[dict] = []

    def explain(self, records, *, progress=None):
        self.records += list(records)
        if progress is not None:
            progress.update(len(records))
        return [self.texts[_name(r)] for r in records]

    def install(self, monkeypatch, scoring_module) -> 'ScriptedExplainer':
        """Make ``inference.scoring.evaluate`` use this explainer instead of building one from the params."""
        monkeypatch.setattr(scoring_module, 'Explainer', lambda folder, settings, batch_size=1: self)
        return self


class AppendSentence:
    """The real explainer, with ``sentence`` appended to each answer."""

    def __init__(self, explainer, sentence: str):
        self.inner, self.sentence = explainer, sentence
        self.batch_size = explainer.batch_size

    def explain(self, records, **kwargs):
        return [text + self.sentence for text in self.inner.explain(records, **kwargs)]
