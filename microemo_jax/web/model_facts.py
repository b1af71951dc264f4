"""What the page says about the model, from the files beside its parameter folder: what it trained on
(training.json), how it scored (``evaluate``'s summary.json) and the held-out clips a visitor can pick."""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import sys

from microemo_jax.data import pipeline
from microemo_jax.data.tokenizer_identity import TokenizerMismatch, check_same
from microemo_jax.inference.scoring import plan_videos
from microemo_jax.inference.videos import raw_video, subtitles_beside
from microemo_jax.metrics.per_sample import read_per_sample
from microemo_jax.table_keys import load_json
from microemo_jax.web.upload import Limits, ServeError, public_name

SCORE_KEYS = (('accuracy_s', 'Accuracy_s'), ('recall_s', 'Recall_s'), ('avg', 'avg'),
              ('ew_level1_f', 'wheel F (level 1)'), ('ew_level2_f', 'wheel F (level 2)'), ('ew_mean', 'wheel F (mean)'))


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """A clip of the evaluated (never trained on) split, with its raw files and gold labels."""
    name: str
    video: str
    subtitles: str | None
    gold: list | None


def find_scores(params_path: str, explicit: str | None = None) -> str | None:
    """``evaluate``'s summary.json for this parameter folder: ``explicit`` (a file or the folder holding it),
    else the newest one within two folders above the parameter folder that names this folder as its params
    (``make demo`` writes runs/demo/report/evaluate/summary.json for runs/demo/stage2/params)."""
    if explicit:
        path = os.path.join(explicit, 'summary.json') if os.path.isdir(explicit) else explicit
        if not os.path.isfile(path):
            raise ServeError(f"--scores {explicit}: no such file (expected evaluate's summary.json)")
        return path
    here = os.path.abspath(params_path)
    base = os.path.dirname(os.path.dirname(here))
    candidates = []
    for pattern in ('summary.json', '*/summary.json', '*/*/summary.json', '*/*/*/summary.json'):
        candidates += glob.glob(os.path.join(glob.escape(base), pattern))
    found = []
    for path in candidates:
        try:
            with open(path) as f:
                summary = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(summary, dict) and os.path.abspath(str(summary.get('params', ''))) == here \
                and isinstance(summary.get('scores'), dict):
            found.append((summary.get('split') == 'validation', os.path.getmtime(path), path))
    return max(found)[2] if found else None


def load_summary(path: str | None) -> dict | None:
    if not path:
        return None
    try:
        summary = load_json(path)  # a key given twice is refused
    except (OSError, ValueError) as e:
        raise ServeError(f"--scores {path}: cannot read evaluate's summary ({e})") from e
    if not isinstance(summary, dict) or not isinstance(summary.get('scores'), dict):
        raise ServeError(f"--scores {path}: not a summary.json written by `python -m microemo_jax.evaluate`")
    summary['path'] = os.path.abspath(path)
    return summary


def same_tokenizers(summary: dict | None, tokenizers: dict | None, *, explicit: bool) -> dict | None:
    """``summary`` unless it was scored with other tokenizers than the folder's (``evaluate`` records them): such
    scores belong to other weights. Refused when given with --scores, else left out with a warning."""
    if summary is None:
        return None
    try:
        check_same(tokenizers, summary.get('tokenizers'), 'the parameter folder', f"the scores in {summary['path']}",
                   hint='evaluate this folder again')
    except TokenizerMismatch as e:
        if explicit:
            raise ServeError(f"--scores: {e}") from None
        print(f"warning: not showing {summary['path']}: {e}", file=sys.stderr, flush=True)
        return None
    return summary


def held_out_clips(info: dict, summary: dict | None, limit: int = 50) -> list[HeldOut]:
    """The evaluated split's clips (per_sample.csv beside summary.json), else the prepared validation split's,
    whose raw videos are still where training.json says the raw corpus is."""
    raw = info.get('raw')
    if not raw or not os.path.isdir(raw):
        return []
    names: dict[str, list | None] = {}  # video -> gold labels
    per_sample = os.path.join(os.path.dirname(summary['path']), 'per_sample.csv') if summary else None
    if per_sample and os.path.isfile(per_sample):
        names = {row['name']: row['gold'] for row in read_per_sample(per_sample)}
    elif info.get('data_dir'):
        try:
            videos = plan_videos(pipeline.open_split(info['data_dir'], 'validation'), 'description')
        except Exception:  # no validation split, or the prepared data moved: no held-out clips to offer
            return []
        names = {v['name']: v['gold'] for v in videos}
    clips = []
    for name in sorted(names)[:limit]:
        video = raw_video(raw, name)
        if video is not None:
            clips.append(HeldOut(name, video, subtitles_beside(video), names[name]))
    return clips


def model_markdown(params_path: str, cfg, info: dict, summary: dict | None, generation: dict,
                   limits: Limits) -> str:
    """The model panel: the folder, the architecture in a line, what it trained on, its validation scores.
    Folders and files by name only: the page never shows a server path."""
    m = cfg.model
    stage = {1: 'stage 1 (alignment, LLM frozen)', 2: 'stage 2 (instruction tuning with LoRA)'}.get(
        cfg.get('stage'), f"stage {cfg.get('stage')}")
    lines = [f"**Parameter folder** `{public_name(params_path)}`  ",
             f"**Variant** {cfg.get('variant') or 'custom'}, {stage}"
             + (f", {info['steps']} steps" if info.get('steps') else ''),
             '',
             f"**Model** {m.num_frames} frames at {m.vision.image_size} px, {m.micro_expression.num_crops} face crops "
             f"per anchor, up to {m.max_utterances} utterances; LLM {m.llm.num_layers} layers x {m.llm.hidden_size} "
             f"wide, vocabulary {m.llm.vocab_size}",
             '']
    if info:
        splits = info.get('splits') or {}
        split_text = ', '.join(f"{k}: {v} records" for k, v in sorted(splits.items())) or 'unknown'
        lines += [f"**Trained on** {info.get('source') or '?'} corpus `{public_name(info.get('raw'))}`, prepared "
                  f"in `{public_name(info.get('data_dir'))}` ({split_text}; the splits share no video)", '']
    else:
        lines += ['**Trained on** not recorded (no training.json in the parameter folder)', '']
    if summary:
        keys = [(k, label) for k, label in SCORE_KEYS if k in summary['scores']]
        rows = [('model', summary['scores'])]
        if summary.get('baseline'):
            rows.append((f"majority label ({summary['baseline'].get('label')})", summary['baseline']['scores']))
        lines += [f"**Scores on the {summary.get('split', '?')} split** ({summary['scores'].get('n', '?')} clips "
                  f"with gold labels; OV-emotion set scores from `evaluate`, higher is better)", '',
                  '| | ' + ' | '.join(label for _, label in keys) + ' |',
                  '|---|' + '---:|' * len(keys)]
        for label, scores in rows:
            lines.append(f'| {label} | ' + ' | '.join(f"{scores[k]:.3f}" for k, _ in keys) + ' |')
        lines += ['', f"from evaluate's `{public_name(summary['path'])}`"]
    else:
        lines += ['**Scores** no evaluation found for this folder: run `python -m microemo_jax.evaluate --params '
                  'PARAMS --data PREPARED --out DIR` and serve with `--scores DIR/summary.json`.']
    lines += ['', f"**Generation** {', '.join(f'{k}={v}' for k, v in generation.items())}  ",
              f"**Limits** uploads up to {limits.max_upload_mb:g} MB and {limits.max_seconds:g} s"
              + ('; a face must be found' if limits.require_faces else '')]
    return '\n'.join(lines)
