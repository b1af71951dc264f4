"""``per_sample.csv`` (one row per evaluated clip: name, gold and predicted labels, explanation) and the
printed score table, as ``evaluate`` writes them and the demo report and web page read them."""
from __future__ import annotations

import csv
import json


def write_per_sample(path: str, rows: list[dict]) -> None:
    """per_sample.csv: name, gold and predicted labels (JSON lists; gold empty for a clip without labels),
    explanation."""
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['name', 'gold', 'predicted', 'explanation'])
        for r in rows:
            writer.writerow([r['name'], json.dumps(r['gold']) if r['gold'] is not None else '',
                             json.dumps(r['predicted'], ensure_ascii=False), r['explanation']])


def read_per_sample(path: str) -> list[dict]:
    """The rows ``write_per_sample`` wrote, labels decoded (gold None for a clip without labels)."""
    with open(path, newline='') as f:
        return [{'name': row['name'], 'gold': json.loads(row['gold']) if row.get('gold') else None,
                 'predicted': json.loads(row['predicted']), 'explanation': row['explanation']}
                for row in csv.DictReader(f)]


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
    lines.append(f"{summary['split']} split, n={summary['scores']['n']} clips with gold labels")
    return '\n'.join(lines)
