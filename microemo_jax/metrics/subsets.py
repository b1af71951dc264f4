"""The scores of a set of clips, with bootstrap intervals, the baseline's scores and the temporal grounding:
what ``evaluate`` reports for the whole split and for each group of ``--groups``.

A row is one evaluated clip: ``name``, ``gold`` (labels, or None), ``predicted`` (labels), ``explanation``
(the generated text) and ``gold_text`` (the gold explanation, '' when the clip has none).
"""
from __future__ import annotations

from microemo_jax.metrics.clip_scores import OV_KEYS, WHEEL_KEYS, clip_parts, score_intervals
from microemo_jax.metrics.grounding import grounding_summary, stated_times, times_grounding
from microemo_jax.metrics.groups import GroupTable
from microemo_jax.metrics.intervals import Bootstrap
from microemo_jax.metrics.ov import score_ov
from microemo_jax.metrics.wheel import score_wheel


def score(gold: dict, pred: dict, synonyms, wheel) -> dict:
    """OV scores, and the emotion-wheel scores when a wheel is given."""
    out = dict(score_ov(gold, pred, synonyms))
    if wheel is not None:
        out.update(score_wheel(gold, pred, wheel))
    return out


def _scored(gold: dict, pred: dict, synonyms, wheel, bootstrap: Bootstrap) -> tuple[dict, dict]:
    scores = score(gold, pred, synonyms, wheel)
    parts = clip_parts(gold, pred, synonyms, wheel, skipped=scores['skipped_empty_gold'])
    keys = OV_KEYS + (WHEEL_KEYS if wheel is not None else ())
    intervals = score_intervals(parts, bootstrap) if bootstrap.resamples else {}
    return scores, {k: intervals.get(k) for k in keys}


def _has_label(labels) -> bool:
    return any(str(x).strip() for x in labels or ())


def subset_block(rows: list[dict], *, synonyms, wheel, majority: str | None, bootstrap: Bootstrap,
                 median_s: float | None = None) -> dict:
    """``n`` (clips), ``scores`` (as ``score``; None when no clip has a gold label), ``intervals``
    ({'model': metric -> [low, high], 'baseline': ...}), ``baseline`` (the majority label's scores on these
    clips), ``grounding`` (``grounding_summary`` of the clips' explanations against their gold texts) and
    ``baseline_grounding`` (the same for ``median_s`` stated for every clip; None without it)."""
    gold = {r['name']: r['gold'] for r in rows if r['gold'] is not None}
    block = {'n': len(rows), 'scores': None, 'intervals': None, 'baseline': None}
    if any(_has_label(g) for g in gold.values()):
        pred = {r['name']: r['predicted'] for r in rows}
        block['scores'], model = _scored(gold, pred, synonyms, wheel, bootstrap)
        block['intervals'] = {'model': model, 'baseline': None}
        if majority is not None:
            block['baseline'], block['intervals']['baseline'] = _scored(gold, {n: [majority] for n in gold},
                                                                        synonyms, wheel, bootstrap)
    resamples = bootstrap if bootstrap.resamples else None
    gold_times = [[t.seconds for t in stated_times(r.get('gold_text', ''))] for r in rows]
    block['grounding'] = grounding_summary([times_grounding(g, [t.seconds for t in stated_times(r['explanation'])])
                                            for g, r in zip(gold_times, rows)], resamples)
    block['baseline_grounding'] = None if median_s is None else grounding_summary(
        [times_grounding(g, [median_s]) for g in gold_times], resamples)
    return block


def group_blocks(rows: list[dict], table: GroupTable, **kw) -> dict:
    """For ``evaluate --groups``: the file, the names it lists that the rows lack, and per grouping column and
    group a ``subset_block``."""
    names = [r['name'] for r in rows]
    missing = table.not_in(names)
    by_name = {r['name']: r for r in rows}
    columns = {}
    for column in table.columns:
        columns[column] = {g: subset_block([by_name[n] for n in members], **kw)
                           for g, members in table.assign(names, column).items()}
    return {'file': table.path, 'not_in_split': len(missing), 'not_in_split_examples': missing[:10],
            'columns': columns}
