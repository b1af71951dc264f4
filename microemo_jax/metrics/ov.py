"""MER2024-OV set-level scores: Accuracy_s, Recall_s and their mean.

Per gold sample: lower-case and strip each label, map it to the head of its synonym group, take
the sets G and P; Accuracy_s = |G∩P|/|P| and Recall_s = |G∩P|/|G|, both 0 when P is empty. Means run
over the gold samples, so a missing prediction costs what an empty one does and cannot be dropped to
look better; predictions for names outside gold are reported and ignored.
"""
from __future__ import annotations

from collections.abc import Mapping

from microemo_jax.metrics.labels import normalise
from microemo_jax.metrics.synonyms import as_synonyms


def _checked(table: Mapping, what: str) -> Mapping:
    if not isinstance(table, Mapping):
        raise TypeError(f"{what} must be a dict name -> list of labels, got {type(table).__name__}")
    return table


def _words(labels, where: str) -> list[str]:
    try:
        return normalise(labels)
    except TypeError as e:
        raise TypeError(f"{where}: {e}") from None


def score_ov(gold: Mapping[str, list[str]], pred: Mapping[str, list[str]], synonyms=None) -> dict:
    """Scores ``pred`` against ``gold`` (name -> labels); ``synonyms`` as ``load_synonyms`` returns, or None.

    Returns accuracy_s, recall_s, avg, n (samples scored), ignored_predictions (names not in gold),
    missing_predictions (gold names scored as empty predictions), skipped_empty_gold (gold samples
    without labels: recall is undefined for them), synonyms (the grouping used) and
    synonyms_missing (samples a per-sample source has no groups for; their words stay themselves).
    """
    gold, pred = _checked(gold, 'gold'), _checked(pred, 'pred')
    syn = as_synonyms(synonyms)
    accuracy, recall, empty_gold, no_groups = [], [], [], []
    for name, labels in gold.items():
        table = syn.table(name)
        if table is None:
            no_groups.append(name)
        g = syn.heads(_words(labels, f'gold[{name!r}]'), table)
        p = syn.heads(_words(pred.get(name, ()), f'pred[{name!r}]'), table)
        if not g:
            empty_gold.append(name)
            continue
        hit = len(g & p)
        accuracy.append(hit / len(p) if p else 0.0)
        recall.append(hit / len(g) if p else 0.0)
    if not accuracy:
        raise ValueError(f"no gold sample has a label to score ({len(gold)} gold samples, "
                         f"{len(empty_gold)} with an empty label set)")
    acc, rec = sum(accuracy) / len(accuracy), sum(recall) / len(recall)
    return {
        'accuracy_s': acc, 'recall_s': rec, 'avg': (acc + rec) / 2, 'n': len(accuracy),
        'ignored_predictions': sorted(n for n in pred if n not in gold),
        'missing_predictions': sorted(n for n in gold if n not in pred),
        'skipped_empty_gold': empty_gold,
        'synonyms': syn.source,
        'synonyms_missing': no_groups,
    }
