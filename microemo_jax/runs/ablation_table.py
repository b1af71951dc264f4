"""The ablation table: one row per variant, one column per scenario group, each score with its 95% interval,
then the error of the times the explanations state. Written as markdown (for the README), JSON (for code)
and a picture (matplotlib: each group's score per variant with its interval, and the time error).

The score is one of ``evaluate``'s OV scores (default ``avg``, the mean of Accuracy_s and Recall_s) of the
held-out split; ``micro`` is the corpus's micro-expression clips (its ``groups.csv`` column ``micro``), the
other columns its scenarios (column ``group``). The last row is the majority-label baseline of the same
held-out clips, for reference; its time error is that of the training split's median gold time stated for every
clip (``evaluate``'s time baseline). The time error is also given apart for the micro clips and the others (column
``micro``): only the local branch sees when a micro-expression falls between the global frames, while the other
dated events, the onsets of shown expressions, lie on the frames that carry the timestamps.
"""
from __future__ import annotations

import json
import os

from matplotlib.figure import Figure

from microemo_jax.runs.ablations import VARIANTS

GROUNDING_KEYS = ('mae_s', 'mae_s_interval', 'n_gold_timed', 'share_stating_time', 'n_matched')
TIME_GROUPS = ('micro', 'other')   # the groups of column ``micro`` whose time error the table gives apart


def _grounding(g: dict | None) -> dict:
    g = g or {}
    return {k: g.get(k) for k in GROUNDING_KEYS}


def _grounding_by_group(groups: dict, key: str) -> dict:
    """{'micro': ..., 'other': ...}: the ``key`` grounding ('grounding' or 'baseline_grounding') of each group of
    column ``micro`` ({} without that column)."""
    column = groups.get('micro') or {}
    return {name: _grounding((column.get(name) or {}).get(key)) for name in TIME_GROUPS if name in column}


def _cell(block: dict | None, metric: str) -> dict:
    if not block or not block.get('scores'):
        return {'n': block['n'] if block else 0, 'value': None, 'interval': None}
    iv = ((block.get('intervals') or {}).get('model') or {}).get(metric)
    return {'n': block['n'], 'value': block['scores'][metric], 'interval': iv}


def table(results: dict[str, dict], metric: str = 'avg') -> dict:
    """{'metric', 'columns': [...], 'rows': {variant: {'title', 'cells': {column: {n, value, interval}},
    'grounding': {...}}}}; columns: 'all', 'micro', then the scenario groups in order of first appearance."""
    columns, rows = ['all'], {}
    for name, summary in results.items():
        groups = (summary.get('groups') or {}).get('columns') or {}
        whole = {'n': summary['n_videos'], 'scores': summary['scores'], 'intervals': summary.get('intervals')}
        cells = {'all': _cell(whole, metric)}
        if 'micro' in groups:
            cells['micro'] = _cell(groups['micro'].get('micro'), metric)
        for group, block in groups.get('group', {}).items():
            cells[group] = _cell(block, metric)
        for c in cells:
            if c not in columns:
                columns.append(c)
        rows[name] = {'title': VARIANTS[name].title if name in VARIANTS else name, 'cells': cells,
                      'grounding': _grounding(summary.get('grounding')),
                      'grounding_by_group': _grounding_by_group(groups, 'grounding')}
    first = next(iter(results.values()), None)
    if first is not None and first.get('baseline'):
        rows['majority'] = _baseline_row(first, metric)
    return {'metric': metric, 'columns': columns, 'rows': rows}


def _as_baseline(block: dict | None) -> dict | None:
    if not block or not block.get('baseline'):
        return None
    return {'n': block['n'], 'scores': block['baseline'],
            'intervals': {'model': (block.get('intervals') or {}).get('baseline')}}


def _baseline_row(summary: dict, metric: str) -> dict:
    """The majority-label baseline of the first variant's evaluation (the same split and label for all)."""
    groups = (summary.get('groups') or {}).get('columns') or {}
    whole = {'n': summary['n_videos'], 'baseline': summary['baseline']['scores'],
             'intervals': summary.get('intervals')}
    cells = {'all': _cell(_as_baseline(whole), metric)}
    if 'micro' in groups:
        cells['micro'] = _cell(_as_baseline(groups['micro'].get('micro')), metric)
    for group, block in groups.get('group', {}).items():
        cells[group] = _cell(_as_baseline(block), metric)
    time = summary.get('time_baseline') or {}
    title = f"majority label ({summary['baseline']['label']})" + (
        f"; time: the median {time['seconds']:.1f} s for every clip" if time else '') + ", for reference"
    return {'title': title, 'cells': cells, 'grounding': _grounding(time.get('grounding')),
            'grounding_by_group': _grounding_by_group(groups, 'baseline_grounding') if time else {}}


def _with_interval(value, iv) -> str:
    return '-' if value is None else f"{value:.2f}" + (f" [{iv[0]:.2f}, {iv[1]:.2f}]" if iv else '')


def _fmt(cell: dict | None) -> str:
    return _with_interval(cell['value'], cell['interval']) if cell else '-'


def _mae(g: dict | None) -> str:
    return _with_interval(g['mae_s'], g['mae_s_interval']) if g else '-'


def markdown(t: dict) -> str:
    rows = t['rows']
    first = next(iter(rows.values()), {'cells': {}})
    head = [f"{c} (n={first['cells'][c]['n']})" if c in first['cells'] else c for c in t['columns']]
    by = [name for name in TIME_GROUPS if any(name in row.get('grounding_by_group', {}) for row in rows.values())]
    head_t = ['time MAE s'] + [f'time MAE s, {name} clips' for name in by] + ['states a time']
    lines = ['| variant | ' + ' | '.join(head + head_t) + ' |', '|---' * (len(head) + len(head_t) + 1) + '|']
    for row in rows.values():
        g = row['grounding']
        share = '-' if g['share_stating_time'] is None else f"{g['share_stating_time']:.0%} of {g['n_gold_timed']}"
        times = [_mae(g)] + [_mae(row.get('grounding_by_group', {}).get(name)) for name in by] + [share]
        lines.append(f"| {row['title']} | " + ' | '.join([_fmt(row['cells'].get(c)) for c in t['columns']] + times)
                     + ' |')
    lines.append(f"\n{t['metric']} on the held-out split, 95% percentile-bootstrap intervals over clips; time MAE: "
                 f"mean absolute error of the stated times against the gold explanation's, per dated event"
                 + (" (apart: the micro clips' micro-expressions, and the other clips' dated events, the onsets of "
                    "shown expressions)" if by else '') + '.')
    return '\n'.join(lines)


def draw(t: dict, path: str) -> str:
    """Left: each column's score per variant with its interval; right: the time error per variant."""
    rows, columns = t['rows'], t['columns']
    fig = Figure(figsize=(max(8.0, 1.3 * len(columns) + 4), 4.8), dpi=100)
    ax, ax_t = fig.subplots(1, 2, gridspec_kw={'width_ratios': [max(3, len(columns)), 1.4]})
    width = 0.8 / max(1, len(rows))
    for k, row in enumerate(rows.values()):
        xs, ys, lo, hi = [], [], [], []
        for i, c in enumerate(columns):
            cell = row['cells'].get(c)
            if cell and cell['value'] is not None:
                iv = cell['interval'] or [cell['value'], cell['value']]
                xs.append(i - 0.4 + width * (k + 0.5))
                ys.append(cell['value'])
                lo.append(cell['value'] - iv[0])
                hi.append(iv[1] - cell['value'])
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt='o', capsize=3, color=f'C{k}', label=row['title'])
        g = row['grounding']
        if g['mae_s'] is not None:
            iv = g['mae_s_interval'] or [g['mae_s'], g['mae_s']]
            ax_t.errorbar([k], [g['mae_s']], yerr=[[g['mae_s'] - iv[0]], [iv[1] - g['mae_s']]], fmt='o', capsize=3,
                          color=f'C{k}')
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha='right')
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel(f"{t['metric']} (held-out split), 95% interval")
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8, loc='best')
    ax_t.set_xticks(range(len(rows)), [r['title'] for r in rows.values()], rotation=60, ha='right', fontsize=7)
    ax_t.set_ylabel('stated time error, s (MAE, 95% interval)')
    ax_t.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def write_table(results: dict[str, dict], out: str, metric: str = 'avg') -> dict[str, str]:
    """OUT/ablations.md, OUT/ablations.json and OUT/ablations.png; returns their paths."""
    t = table(results, metric)
    os.makedirs(out, exist_ok=True)
    paths = {k: os.path.join(out, f'ablations.{k}') for k in ('md', 'json', 'png')}
    with open(paths['md'], 'w') as f:
        f.write(markdown(t) + '\n')
    with open(paths['json'], 'w') as f:
        json.dump(t, f, indent=2)
    draw(t, paths['png'])
    return paths
