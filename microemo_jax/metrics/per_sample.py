"""``per_sample.csv`` (one row per evaluated clip: name, gold and predicted labels, explanation, the times the
gold and the generated explanation state) and the printed score table, as ``evaluate`` writes them and the
demo report and web page read them."""
from __future__ import annotations

import csv
import json

from microemo_jax.csv_cells import escape_row, unescape_cell
from microemo_jax.table_keys import checked_header

SCORE_KEYS = ('accuracy_s', 'recall_s', 'avg', 'ew_level1_f', 'ew_level2_f', 'ew_mean')
GROUP_KEYS = ('accuracy_s', 'recall_s', 'avg')


def write_per_sample(path: str, rows: list[dict]) -> None:
    """per_sample.csv: name, gold and predicted labels (JSON lists; gold empty for a clip without labels),
    explanation, gold_times and stated_times (JSON lists of seconds, metrics.grounding); cells a spreadsheet
    would run as formulas are escaped (csv_cells)."""
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['name', 'gold', 'predicted', 'explanation', 'gold_times', 'stated_times'])
        for r in rows:
            writer.writerow(escape_row([r['name'], json.dumps(r['gold']) if r['gold'] is not None else '',
                                        json.dumps(r['predicted'], ensure_ascii=False), r['explanation'],
                                        json.dumps(r.get('gold_times', [])), json.dumps(r.get('stated_times', []))]))


def read_per_sample(path: str) -> list[dict]:
    """The rows ``write_per_sample`` wrote, labels and times decoded (gold None for a clip without labels;
    files from before the time columns read with empty time lists)."""
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        checked_header(path, reader.fieldnames or [])
        rows = [{k: unescape_cell(v) for k, v in row.items() if isinstance(v, str)} for row in reader]
    return [{'name': row['name'], 'gold': json.loads(row['gold']) if row.get('gold') else None,
             'predicted': json.loads(row['predicted']), 'explanation': row['explanation'],
             'gold_times': json.loads(row.get('gold_times') or '[]'),
             'stated_times': json.loads(row.get('stated_times') or '[]')} for row in rows]


def _with_interval(value: float, interval) -> str:
    if not interval:
        return f'{value:.3f}'
    return f'{value:.3f} [{interval[0]:.2f},{interval[1]:.2f}]'


def format_grounding(g: dict | None) -> str:
    """One line: the stated times' error against the gold explanation's."""
    if not g or not g.get('n_gold_timed'):
        return 'time: no gold explanation states a time'
    share = f"{g['n_stating_time']}/{g['n_gold_timed']} clips whose gold states a time state one"
    if g.get('mae_s') is None:
        return f'time: {share}; no stated time to compare'
    iv = g.get('mae_s_interval')
    mae = f"{g['mae_s']:.2f} s" + (f" [{iv[0]:.2f},{iv[1]:.2f}]" if iv else '')
    return f"time: mean abs. error {mae} over {g['n_matched']} of {g['n_events']} gold events; {share}"


def format_groups(summary: dict) -> list[str]:
    """Per grouping column: one row per group (n, the OV scores with intervals, the baseline's avg, the time
    error); the names the groups file lists that the split lacks."""
    groups = summary.get('groups')
    if not groups:
        return []
    lines = []
    for column, table in groups['columns'].items():
        head = f"{'by ' + column:<24}{'n':>4}" + ''.join(f'{k:>22}' for k in GROUP_KEYS)
        lines += ['', head + f"{'majority avg':>14}{'time MAE s':>12}"]
        for name, block in table.items():
            s, iv = block['scores'], (block['intervals'] or {}).get('model') or {}
            cells = ''.join(f'{_with_interval(s[k], iv.get(k)):>22}' if s else f"{'-':>22}" for k in GROUP_KEYS)
            base = f"{block['baseline']['avg']:>14.3f}" if block.get('baseline') else f"{'-':>14}"
            mae = block['grounding']['mae_s']
            lines.append(f'{name:<24}{block["n"]:>4}{cells}{base}' + (f'{mae:>12.2f}' if mae is not None
                                                                      else f"{'-':>12}"))
    if groups.get('not_in_split'):
        lines.append(f"({groups['file']} also lists {groups['not_in_split']} clip(s) this split does not hold, "
                     f"e.g. {', '.join(groups['not_in_split_examples'][:3])})")
    return lines


def format_table(summary: dict) -> str:
    """The model against the baseline, one row each (Accuracy_s, Recall_s, avg and the wheel F if scored),
    the model's 95% intervals, the time error, then the groups (if any)."""
    keys = [k for k in SCORE_KEYS if k in summary['scores']]
    lines = [f"{'':<28}" + ''.join(f'{k:>12}' for k in keys)]
    rows = [('model', summary['scores'])]
    if summary.get('baseline'):
        rows.append((f"majority ({summary['baseline']['label']})", summary['baseline']['scores']))
    for label, scores in rows:
        lines.append(f'{label:<28}' + ''.join(f'{scores[k]:>12.3f}' for k in keys))
    intervals = summary.get('intervals') or {}
    model = intervals.get('model') or {}
    if any(model.get(k) for k in keys):
        level = round(100 * intervals.get('level', 0.95))
        lines.append(f"{f'model {level}% interval':<28}" + ''.join(
            f"{f'{model[k][0]:.2f}-{model[k][1]:.2f}' if model.get(k) else '-':>12}" for k in keys))
    subset = summary.get('subset')
    lines.append(f"{summary['split']} split, n={summary['scores']['n']} clips with gold labels"
                 + (f" (a subset: the first {subset['scored']} of its {subset['of']} videos, --limit)" if subset else ''))
    if 'grounding' in summary:
        lines.append(format_grounding(summary['grounding']))
    time = summary.get('time_baseline') or {}
    base = time.get('grounding') or {}
    if base.get('mae_s') is not None:
        iv = base.get('mae_s_interval')
        lines.append(f"time baseline: {time['seconds']:.2f} s (the {time['from_split']} split's median gold time) for "
                     f"every clip: mean abs. error {base['mae_s']:.2f} s" + (f" [{iv[0]:.2f},{iv[1]:.2f}]" if iv else ''))
    if (summary.get('faces') or {}).get('shuffled'):
        lines.append(f"faces shuffled between clips (seed {summary['faces']['seed']})")
    return '\n'.join(lines + format_groups(summary))
