"""``per_sample.csv`` (one row per evaluated clip: name, gold and predicted labels, explanation) and the
printed score table, as ``evaluate`` writes them and the demo report and web page read them."""
from __future__ import annotations

import csv
import json

from microemo_jax.csv_cells import escape_row, unescape_cell
from microemo_jax.table_keys import checked_header


def write_per_sample(path: str, rows: list[dict]) -> None:
    """per_sample.csv: name, gold and predicted labels (JSON lists; gold empty for a clip without labels),
    explanation; cells a spreadsheet would run as formulas are escaped (``csv_cells``)."""
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['name', 'gold', 'predicted', 'explanation'])
        for r in rows:
            writer.writerow(escape_row([r['name'], json.dumps(r['gold']) if r['gold'] is not None else '',
                             json.dumps(r['predicted'], ensure_ascii=False), r['explanation']]))


def read_per_sample(path: str) -> list[dict]:
    """The rows ``write_per_sample`` wrote, labels decoded (gold None for a clip without labels)."""
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        checked_header(path, reader.fieldnames or [])
        rows = [{k: unescape_cell(v) for k, v in row.items() if isinstance(v, str)} for row in reader]
    return [{'name': row['name'], 'gold': json.loads(row['gold']) if row.get('gold') else None,
             'predicted': json.loads(row['predicted']), 'explanation': row['explanation']} for row in rows]


def format_table(summary: dict) -> str:
    """The model against the baseline, one row each (Accuracy_s, Recall_s, avg and the wheel F if scored)."""
    keys = [k for k in ('accuracy_s', 'recall_s', 'avg', 'ew_level1_f', 'ew_level2_f', 'ew_mean')
            if k in summary['scores']]
    lines = [f"{'':<28}" + ''.join(f'{k:>12}' for k in keys)]
    rows = [('model', summary['scores'])]
    if summary.get('baseline'):
        rows.append((f"majority ({summary['baseline']['label']})", summary['baseline']['scores']))
    for label, scores in rows:
        lines.append(f'{label:<28}' + ''.join(f'{scores[k]:>12.3f}' for k in keys))
    subset = summary.get('subset')
    lines.append(f"{summary['split']} split, n={summary['scores']['n']} clips with gold labels"
                 + (f" (a subset: the first {subset['scored']} of its {subset['of']} videos, --limit)" if subset else ''))
    return '\n'.join(lines)
