"""The MER-UniBench table in the layout of AffectGPT's Table 2: one column per dataset, the mean, one row per
checkpoint, and (``--select best``) the papers' per-dataset best of the checkpoints, labelled as such.

Scores are the datasets' main metrics (hit rate, WAF, emotion-wheel F) x 100. The mean is the mean of the
columns present; with fewer than nine it says over how many, since such a mean is not the published one.
Written as ``table.md``, ``table.json`` and ``table.png`` (a grouped bar chart).
"""
from __future__ import annotations

import json
import os

import numpy as np
from matplotlib.figure import Figure

from microemo_jax.metrics.benchmark import DATASETS

ORDER = ('MER2023', 'MER2024', 'MELD', 'IEMOCAPFour', 'CMUMOSI', 'CMUMOSEI', 'SIMS', 'SIMSv2', 'OVMERDPlus')
HEADERS = {'MER2023': 'MER23', 'MER2024': 'MER24', 'MELD': 'MELD', 'IEMOCAPFour': 'IEMO', 'CMUMOSI': 'MOSI',
           'CMUMOSEI': 'MOSEI', 'SIMS': 'SIMS', 'SIMSv2': 'SIMSv2', 'OVMERDPlus': 'OV-MERD+'}
METRIC_NAMES = {'hit_rate': 'hit rate', 'waf': 'WAF', 'fs': 'emotion-wheel F'}
PUBLISHED = {  # AffectGPT (arXiv 2501.16566) Table 2, each dataset's best of checkpoints 30-60 (the paper's policy)
    'AffectGPT': (78.54, 78.80, 55.65, 60.54, 81.30, 80.90, 88.49, 86.18, 62.52, 74.77),
    'Emotion-LLaMA': (59.38, 73.62, 46.76, 55.47, 66.13, 67.66, 78.32, 77.23, 52.97, 64.17),
}


def _pct(score: dict) -> float | None:
    value = score.get(DATASETS[score['dataset']])
    return None if value is None else round(100 * float(value), 2)


def _row(label: str, kind: str, scores: dict, datasets: list[str], chosen: dict | None = None) -> dict:
    values = {d: scores[d] for d in datasets if scores.get(d) is not None}
    mean = round(float(np.mean(list(values.values()))), 2) if len(values) == len(datasets) and values else None
    row = {'label': label, 'kind': kind, 'scores': values, 'mean': mean, 'mean_over': len(values)}
    if chosen is not None:
        row['chosen'] = chosen
    return row


def build_table(results: dict[str, dict[str, dict]], *, select: str, extractor: dict, question: dict,
                datasets_found: dict[str, str]) -> dict:
    """``results``: checkpoint label -> dataset -> the metrics CLI's score dict (``bench_cli.run_benchmark``)."""
    datasets = [d for d in ORDER if d in datasets_found]
    rows = [_row(label, 'single checkpoint', {d: _pct(s) for d, s in per.items()}, datasets)
            for label, per in results.items()]
    if select == 'best' and len(results) > 1:
        best, chosen = {}, {}
        for d in datasets:
            candidates = [(r['scores'].get(d), r['label']) for r in rows if r['scores'].get(d) is not None]
            if candidates:
                best[d], chosen[d] = max(candidates, key=lambda c: c[0])
        rows.append(_row(f'per-dataset best of {len(results)} checkpoints', 'the papers\' policy',
                         best, datasets, chosen))
    detail = {}
    for d in datasets:
        any_score = next(per[d] for per in results.values() if d in per)
        detail[d] = {'metric': DATASETS[d], 'n': any_score['n'], 'expected_n': any_score['expected_n'],
                     'folder': datasets_found[d],
                     'missing_predictions': {label: per[d]['missing_predictions'] for label, per in results.items()
                                             if d in per}}
        unread = {label: per[d].get('extractor', {}).get('unread_label_replies') for label, per in results.items()
                  if d in per}
        if any(v is not None for v in unread.values()):   # an LLM extractor: its replies that held no list
            detail[d]['unread_label_replies'] = unread
    return {'benchmark': 'MER-UniBench', 'columns': datasets, 'headers': [HEADERS[d] for d in datasets],
            'rows': rows, 'datasets': detail, 'missing_datasets': [d for d in ORDER if d not in datasets_found],
            'extractor': extractor, 'question': question, 'select': select,
            'published': {k: dict(zip([*ORDER, 'mean'], v)) for k, v in PUBLISHED.items()},
            'about': 'scores x 100: hit rate (MER2023, MER2024, MELD, IEMOCAP), WAF (MOSI, MOSEI, SIMS, SIMSv2), '
                     'emotion-wheel F (OV-MERD+), computed as AffectGPT\'s code computes them '
                     '(docs/metrics_benchmark.md); a missing prediction scores as a miss'}


def _cell(value) -> str:
    return '-' if value is None else f'{value:.2f}'


def markdown(table: dict) -> str:
    cols = table['columns']
    mean_head = 'Mean' if len(cols) == len(ORDER) else f'Mean ({len(cols)} of {len(ORDER)})'
    lines = ['| checkpoint | ' + ' | '.join(table['headers']) + f' | {mean_head} |',
             '|---|' + '---|' * (len(cols) + 1)]
    for row in table['rows']:
        label = f"{row['label']} ({row['kind']})"
        lines.append(f'| {label} | ' + ' | '.join(_cell(row['scores'].get(d)) for d in cols)
                     + f" | {_cell(row['mean'])} |")
    for name, scores in table['published'].items():
        lines.append(f'| {name}, published (per-dataset best) | '
                     + ' | '.join(_cell(scores[d]) for d in cols) + f" | {_cell(scores['mean'])} |")
    ex, q = table['extractor'], table['question']
    lines += ['', f"Labels: {ex['labels']} extractor; sentiment (WAF): {ex['sentiment']}. Question asked: "
                  f"{q['text']!r} ({q['kind']}).",
              'Metrics: ' + ', '.join(f"{HEADERS[d]} {METRIC_NAMES[table['datasets'][d]['metric']]}" for d in cols)
              + '. A clip without a prediction scores as a miss.']
    for row in table['rows']:
        if 'chosen' in row:
            lines.append('Per-dataset best: ' + ', '.join(f'{HEADERS[d]} from {c}' for d, c in row['chosen'].items())
                         + '. Choosing per dataset on the test set is the papers\' policy, not a single model.')
    for d in cols:
        info = table['datasets'][d]
        missing = {k: v for k, v in info['missing_predictions'].items() if v}
        if info['n'] != info['expected_n'] or missing:
            lines.append(f"{HEADERS[d]}: {info['n']} gold clips (official {info['expected_n']})"
                         + (f"; without prediction: {missing}" if missing else ''))
        unread = {k: v for k, v in info.get('unread_label_replies', {}).items() if v}
        if unread:
            lines.append(f"{HEADERS[d]}: label replies of the {table['extractor']['labels']} extractor that held no "
                         f"list (those clips have no labels): {unread}")
    if table['missing_datasets']:
        lines.append('Not prepared under the data root: ' + ', '.join(table['missing_datasets']) + '.')
    return '\n'.join(lines) + '\n'


def picture(table: dict, path: str) -> None:
    cols, rows = table['columns'], table['rows']
    fig = Figure(figsize=(1.1 * len(cols) + 5, 3.6))     # no pyplot: the caller's backend is left alone
    ax = fig.subplots()
    width = 0.8 / max(1, len(rows))
    for i, row in enumerate(rows):
        xs = [j + i * width for j, d in enumerate(cols) if d in row['scores']]
        ax.bar(xs, [row['scores'][d] for d in cols if d in row['scores']], width, label=row['label'])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cols))], [HEADERS[d] for d in cols])
    ax.set_ylabel('score x 100')
    ax.set_ylim(0, 100)
    ax.set_title('MER-UniBench')
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write_table(out: str, table: dict) -> dict:
    """``table.md``, ``table.json``, ``table.png`` in ``out``; returns their paths."""
    paths = {k: os.path.join(out, f'table.{k}') for k in ('md', 'json', 'png')}
    with open(paths['md'], 'w', encoding='utf-8') as f:
        f.write(markdown(table))
    with open(paths['json'], 'w', encoding='utf-8') as f:
        json.dump(table, f, indent=2, ensure_ascii=False)
    picture(table, paths['png'])
    return paths
