"""Stage 2 against stage 3 on the same held-out clips: both scored by ``evaluate`` (per scenario group with 95%
intervals when a groups file is given), the paired difference with its interval, and before/after explanations
(what ``make demo-rl`` writes; ``tools/demo_rl.py`` is its command line).

Both parameter folders answer the same clips with the same greedy settings. The table is the ablation table's
(``runs/ablation_table.py``: each model's score per group with its interval). Each clip's MER2024-OV score (the
mean of its Accuracy_s and Recall_s, what ``evaluate`` averages) is also compared clip by clip: the 95% interval of
the mean difference comes from a paired percentile bootstrap over clips (1000 resamples, seed 0), which is
narrower than the two models' own intervals side by side when the same clips are hard for both.
"""
from __future__ import annotations

import json
import os

import numpy as np

from microemo_jax.inference.scoring import evaluate
from microemo_jax.metrics import load_synonyms, score_ov
from microemo_jax.metrics.per_sample import read_per_sample
from microemo_jax.runs import ablation_table

TITLES = {'stage2': 'stage 2', 'stage3': 'stage 3 (GRPO)'}

RESAMPLES = 1000


def clip_scores(rows: list[dict], synonyms=None) -> dict[str, float]:
    """{clip: its (Accuracy_s + Recall_s) / 2} for rows with gold labels (``per_sample.csv`` rows)."""
    table = load_synonyms(synonyms) if isinstance(synonyms, str) else synonyms
    return {r['name']: score_ov({r['name']: r['gold']}, {r['name']: r['predicted']}, table)['avg']
            for r in rows if r['gold']}


def paired_interval(before: dict[str, float], after: dict[str, float], *, resamples: int = RESAMPLES, seed: int = 0):
    """(mean of after - before over the shared clips, (2.5%, 97.5%) percentile bootstrap interval, clips)."""
    names = sorted(set(before) & set(after))
    if not names:
        raise ValueError("the two evaluations share no clip with gold labels")
    diff = np.asarray([after[n] - before[n] for n in names])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    return float(diff.mean()), (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))), len(names)


def examples(before: list[dict], after: list[dict], scores: tuple[dict, dict], count: int = 2) -> list[dict]:
    """Clips whose labels changed, the largest gains first (then the largest losses): both explanations."""
    by_name = {r['name']: r for r in after}
    changed = [(scores[1].get(r['name'], 0.0) - scores[0].get(r['name'], 0.0), r, by_name[r['name']])
               for r in before if r['name'] in by_name and r['predicted'] != by_name[r['name']]['predicted']]
    changed.sort(key=lambda x: -x[0])
    picked = changed[:count] + ([changed[-1]] if len(changed) > count and changed[-1][0] < 0 else [])
    return [{'name': b['name'], 'gold': b['gold'], 'gain': gain,
             'before': {'labels': b['predicted'], 'explanation': b['explanation']},
             'after': {'labels': a['predicted'], 'explanation': a['explanation']}} for gain, b, a in picked]


def compare(stage2: str, stage3: str, data: str, out: str, *, split: str = 'validation', question: str = 'description',
            synonyms: str | None = None, batch_size: int = 8, groups: str | None = None, **evaluate_kw) -> dict:
    """Evaluate both parameter folders on ``split`` into OUT/stage2 and OUT/stage3 (``groups``: evaluate's
    --groups CSV); write OUT/comparison.json, .md and .png; return the comparison."""
    summaries, rows = {}, {}
    for name, params in (('stage2', stage2), ('stage3', stage3)):
        folder = os.path.join(out, name)
        summaries[name] = evaluate(params, data, split, folder, synonyms=synonyms, batch_size=batch_size,
                                   question=question, groups=groups, **evaluate_kw)
        rows[name] = read_per_sample(os.path.join(folder, 'per_sample.csv'))
    table = load_synonyms(synonyms)
    scores = (clip_scores(rows['stage2'], table), clip_scores(rows['stage3'], table))
    mean, interval, n = paired_interval(*scores)
    result = {'split': split, 'question': question, 'n': n,
              'scores': {k: {m: s['scores'][m] for m in ('accuracy_s', 'recall_s', 'avg')} for k, s in summaries.items()},
              'groups': {k: s.get('groups') for k, s in summaries.items()},
              'intervals': {k: s.get('intervals') for k, s in summaries.items()},
              'baseline': summaries['stage2'].get('baseline'),
              'difference': {'avg': mean, 'interval95': interval, 'method': f'paired percentile bootstrap over clips, '
                                                                              f'{RESAMPLES} resamples, seed 0'},
              'examples': examples(rows['stage2'], rows['stage3'], scores),
              'table': ablation_table.table({TITLES[k]: v for k, v in summaries.items()})}
    ablation_table.draw(result['table'], os.path.join(out, 'comparison.png'))
    with open(os.path.join(out, 'comparison.json'), 'w') as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
    with open(os.path.join(out, 'comparison.md'), 'w') as f:
        f.write(markdown(result) + '\n')
    return result


def markdown(result: dict) -> str:
    s2, s3 = result['scores']['stage2'], result['scores']['stage3']
    lo, hi = result['difference']['interval95']
    lines = [f"{result['n']} held-out clips ({result['split']} split), `--question {result['question']}`, greedy:",
             '', '| model | Accuracy_s | Recall_s | avg |', '|---|---|---|---|',
             f"| stage 2 | {s2['accuracy_s']:.3f} | {s2['recall_s']:.3f} | {s2['avg']:.3f} |",
             f"| stage 3 (GRPO) | {s3['accuracy_s']:.3f} | {s3['recall_s']:.3f} | {s3['avg']:.3f} |"]
    base = result.get('baseline')
    if base:
        b = base['scores']
        lines.append(f"| majority label (`{base['label']}`) | {b['accuracy_s']:.3f} | {b['recall_s']:.3f} | "
                     f"{b['avg']:.3f} |")
    lines += ['', f"stage 3 - stage 2, avg: {result['difference']['avg']:+.3f} (95% interval {lo:+.3f} to {hi:+.3f}, "
              f"{result['difference']['method']})"]
    if result.get('table'):
        lines += ['', 'Per scenario group (avg, 95% interval):', '', ablation_table.markdown(result['table'])]
    for ex in result['examples']:
        lines += ['', f"**{ex['name']}** (gold: {', '.join(ex['gold'])}; clip score {ex['gain']:+.2f})", '',
                  f"* stage 2 ({', '.join(ex['before']['labels']) or 'no label'}): {ex['before']['explanation']}",
                  f"* stage 3 ({', '.join(ex['after']['labels']) or 'no label'}): {ex['after']['explanation']}"]
    return '\n'.join(lines)
