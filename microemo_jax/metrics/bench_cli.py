"""``python -m microemo_jax.metrics --dataset D ...``: one MER-UniBench score, as one JSON-ready dict.

Predicted labels are scored as given (no extraction); the dict names where the labels and the sentiments
came from (``given``: the prediction file; ``cache``: AffectGPT's caches; ``lexicon``: our valence table),
which table mapped them, and every way the run differs from the official code.
"""
from __future__ import annotations

import os

from microemo_jax.metrics.bench_tables import read_gold, read_predictions
from microemo_jax.metrics.benchmark import DATASETS, TEST_SIZES, hit_rate, waf, wheel_fscore
from microemo_jax.metrics.emotion_wheel import load_table
from microemo_jax.metrics.extractors import CacheExtractor
from microemo_jax.metrics.labels import split_list_string
from microemo_jax.metrics.valence import sentiment_of

ABOUT = {
    'hit_rate': 'mean over the 5 wheels of the mean, over the samples whose gold reaches a level-1 cluster of that '
                'wheel, of |clusters(pred) & clusters(gold)| (AffectGPT hitrate_metric_calculation)',
    'waf': "weighted F1 (sklearn's definition) of val > 0 against sentiment == 'positive', over the gold samples "
           "with val != 0 (AffectGPT calculate_dimension_zeroshot)",
    'fs': 'mean over the 5 wheels of F = 2PR/(P+R), P and R the sample means of |g&p|/|p| and |g&p|/|g| on '
          'level-1 clusters, over the samples whose gold reaches a cluster (AffectGPT wheel_metric_calculation)',
    'n': 'gold samples',
    'missing_predictions': 'gold samples without a prediction: scored as misses (the official code stops with a '
                           'KeyError there)',
}
_SCORE_KEYS = {'hit_rate': ('hit_rate',), 'waf': ('waf', 'accuracy'), 'fs': ('fs', 'precision', 'recall')}


def _sentiments(args, labels: dict, sentiments: dict | None) -> tuple[dict, str]:
    if args.sentiment:
        if not args.pred.endswith('.npz'):
            raise ValueError("--sentiment takes the official *-openset-sentiment.npz and goes with an "
                             "*-openset.npz --pred; a CSV --pred carries its own sentiment column")
    if args.pred.endswith('.npz'):
        cache = CacheExtractor(args.pred, args.sentiment)
        out = {n: cache.sentiment(n, split_list_string(cell)) for n, cell in labels.items()}
        return {n: s for n, s in out.items() if s is not None}, cache.sentiment_name
    if sentiments is not None:
        return sentiments, 'given'
    return {n: sentiment_of(split_list_string(cell)) for n, cell in labels.items()}, 'lexicon'


def _warnings(dataset: str, scores: dict, metric: str) -> list[str]:
    out = []
    if scores['missing_predictions']:
        out.append(f"{scores['missing_predictions']} gold samples have no prediction and score as misses "
                   f"(first: {', '.join(scores['missing_names'][:5])})")
    if scores['ignored_predictions']:
        out.append(f"{len(scores['ignored_predictions'])} predicted names are not in gold and were ignored "
                   f"(first: {', '.join(scores['ignored_predictions'][:5])})")
    if scores['n'] != TEST_SIZES[dataset]:
        out.append(f"gold has {scores['n']} samples; the official {dataset} test set has {TEST_SIZES[dataset]}")
    if scores.get('unknown_sentiments'):
        out.append(f"{scores['unknown_sentiments']} sentiments are not positive/negative/neutral and count as "
                   f"neutral, as officially (e.g. {list(scores['unknown_examples'].values())[:3]})")
    if scores[metric] is None:
        empty = [w for w, s in scores['wheels'].items() if s['n'] == 0]
        out.append(f"no gold sample reaches a cluster of {', '.join(empty)}: the score is undefined (the official "
                   f"code gives NaN)")
    return out


def run_benchmark(args) -> dict:
    """Scores ``args.pred`` against ``args.gold`` for ``args.dataset``; raises ValueError/OSError on bad input."""
    dataset = args.dataset
    metric = DATASETS[dataset]
    if getattr(args, 'synonyms', None):
        raise ValueError("--synonyms belongs to the MER2024-OV score; MER-UniBench maps labels through --wheel")
    gold = read_gold(args.gold, dataset, metric)
    labels, sentiments, labels_from = read_predictions(args.pred, metric)
    extractor, table = {'labels': labels_from}, None
    if metric == 'waf':
        sentiments, extractor['sentiment'] = _sentiments(args, labels, sentiments)
        scores = waf(gold, sentiments)
    else:
        if not args.wheel:
            raise ValueError(f"{dataset} is scored through the emotion wheels: give --wheel, AffectGPT's "
                             f"emotion_wheel/ folder (MER2025's wheel_mapping.npz is a different table)")
        scores = (hit_rate if metric == 'hit_rate' else wheel_fscore)(gold, labels, load_table(args.wheel))
        table = {'path': args.wheel, 'kind': 'AffectGPT emotion_wheel folder' if os.path.isdir(args.wheel)
                 else "MER2025 wheel_mapping (not the benchmark's table)"}
    out = {'dataset': dataset, 'metric': metric}
    out.update({k: scores[k] for k in _SCORE_KEYS[metric]})
    out.update({k: v for k, v in scores.items() if k not in out})
    out['expected_n'] = TEST_SIZES[dataset]
    out.update({'extractor': extractor, 'table': table, 'gold': args.gold, 'pred': args.pred,
                'warnings': _warnings(dataset, scores, metric),
                'about': {k: ABOUT[k] for k in (metric, 'n', 'missing_predictions')}})
    return out
