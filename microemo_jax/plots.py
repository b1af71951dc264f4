"""Pictures people would rather look at than read, drawn with matplotlib's object API (``Figure`` straight
to a file: no pyplot, no display, and the caller's own matplotlib backend is left alone).

``draw_curves``: the loss curves of training runs (``python -m microemo_jax.curves`` is its command line).

``draw_rl_curves``: stage 3's curves: the rewards (mean with its spread, each component, the held-out greedy
reward), the KL to the reference, the clipped fraction, the answer length and the entropy.

``draw_timeline``: what the model saw of a clip and what it said. The sampled frames sit on a time axis
at their true timestamps with the tracked face boxes drawn on them, the utterance spans below with
their text, and the labels and explanation above.
"""
from __future__ import annotations

import os
import textwrap
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle


def draw_curves(runs: dict[str, tuple[list, list]], out: str) -> str:
    """Write train loss (lines) and validation loss (dots) against the step to the PNG ``out``; return it.

    ``runs`` maps a run directory to its (train, validation) lists of (step, loss) pairs; the runs are
    placed one after another on the step axis, in order (stage 1 then stage 2).
    """
    fig = Figure(figsize=(9, 5), dpi=100)
    ax = fig.add_subplot()
    offset, drawn = 0, False
    for i, (name, (train, val)) in enumerate(runs.items()):
        colour = f'C{i}'
        label = f'{os.path.basename(os.path.normpath(name))}: train (line), validation (dots)'
        if train:
            ax.plot([s + offset for s, _ in train], [l for _, l in train], color=colour, lw=2, label=label)
        if val:
            ax.plot([s + offset for s, _ in val], [l for _, l in val], 'o', color=colour, ms=7,
                    label=None if train else label)
        drawn = drawn or bool(train or val)
        offset += train[-1][0] if train else 0
    if not drawn:
        raise ValueError('no losses to draw')
    ax.set_xlabel('step')
    ax.set_ylabel('loss')
    ax.grid(alpha=0.3)
    ax.legend(loc='upper right', fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    return out


RL_PANELS = (('reward', 'reward (train: sampled; held-out: greedy)'), ('kl', 'KL to the reference (k3)'),
             ('clip_fraction', 'clipped fraction of tokens'), ('response_length', 'answer tokens'),
             ('entropy', 'entropy per token (nats)'))


def draw_rl_curves(runs: dict[str, dict[str, list]], out: str) -> str:
    """Write stage 3's curves of ``runs`` (run directory -> ``run_log.read_series``) to the PNG ``out``; return it."""
    fig = Figure(figsize=(13, 7.5), dpi=100)
    axes = [fig.add_subplot(2, 3, i + 1) for i in range(len(RL_PANELS) + 1)]
    drawn = False
    for r, (name, s) in enumerate(runs.items()):
        run = os.path.basename(os.path.normpath(name))
        steps = lambda key: [x for x, _ in s.get(key, [])]  # noqa: E731
        values = lambda key: np.array([v for _, v in s.get(key, [])])  # noqa: E731
        if s.get('reward_mean'):
            drawn = True
            ax = axes[0]
            ax.plot(steps('reward_mean'), values('reward_mean'), color=f'C{r}', lw=2, label=f'{run}: train mean')
            if len(s.get('reward_std', [])) == len(s['reward_mean']):
                lo, hi = values('reward_mean') - values('reward_std'), values('reward_mean') + values('reward_std')
                ax.fill_between(steps('reward_mean'), lo, hi, color=f'C{r}', alpha=0.15)
            if s.get('val_reward_mean'):
                ax.plot(steps('val_reward_mean'), values('val_reward_mean'), 'o-', color=f'C{r}', ms=6, lw=1,
                        label=f'{run}: held-out')
            comp = axes[-1]
            parts = [k for k in s if k.startswith('reward_') and k not in ('reward_mean', 'reward_std', 'reward_errors')]
            for j, key in enumerate(sorted(parts)):
                comp.plot(steps(key), values(key), color=f'C{j}', lw=1.5, ls='-' if r == 0 else '--',
                          label=f'{run}: {key[len("reward_"):]}')
                held = f'val_{key}'
                if s.get(held):
                    comp.plot(steps(held), values(held), 'o', color=f'C{j}', ms=5)
        for ax, (key, _) in zip(axes[1:len(RL_PANELS)], RL_PANELS[1:]):
            if s.get(key):
                ax.plot(steps(key), values(key), color=f'C{r}', lw=1.5, label=run)
    if not drawn:
        raise ValueError('no rewards to draw: none of the runs is a stage-3 run (reward_mean in metrics.jsonl)')
    for ax, (_, title) in zip(axes, RL_PANELS + (('', 'reward components (dots: held-out)'),)):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel('step')
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)
    return out


def draw_timeline(path: str, *, frames: Sequence[np.ndarray], timestamps: Sequence[float],
                  face_boxes: np.ndarray, face_found: Sequence[bool], source_size: tuple[int, int],
                  duration: float, utterances: Sequence[dict], labels: Sequence[str], explanation: str,
                  title: str, face_times: Sequence[Sequence[float]] | None = None) -> str:
    """Write the timeline PNG to ``path`` and return it.

    ``frames``: RGB uint8 thumbnails (any size: they are shown at the source aspect ratio);
    ``face_boxes``: (T, 4) x, y, w, h in source pixels (``source_size`` = (width, height));
    ``utterances``: dicts with start, end, text (seconds);
    ``face_times``: per frame, the times of its face tubelet's crops (empty: none), drawn as a mark from the
    first crop to the last under the frames: where the micro-expression branch looked.
    """
    t_count = len(frames)
    duration = max(float(duration), float(max(timestamps, default=0.0)) + 1e-3, 1e-3)
    width, height = source_size
    fig = Figure(figsize=(max(8.0, 1.3 * t_count + 2), 6.2), dpi=100)
    head = fig.add_axes([0.03, 0.78, 0.94, 0.2])
    head.axis('off')
    label_text = ', '.join(labels) if labels else '(no emotion label found in the answer)'
    head.text(0, 0.95, f'{title}', fontsize=12, weight='bold', va='top')
    head.text(0, 0.68, f'labels: {label_text}', fontsize=11, color='#a0301e', va='top')
    head.text(0, 0.42, '\n'.join(textwrap.wrap(explanation or '(empty answer)', 160)[:3]), fontsize=8.5,
              va='top', family='sans-serif')

    ax = fig.add_axes([0.05, 0.12, 0.92, 0.62])
    thumb_w = duration / max(t_count, 1) * 0.92          # thumbnails never overlap
    thumb_h = 1.0
    ax.set_xlim(-thumb_w / 2 - 0.02 * duration, duration + thumb_w / 2)
    ax.set_ylim(-1.35, 1.2)
    for i, (frame, t) in enumerate(zip(frames, timestamps)):
        x0, y0 = t - thumb_w / 2, 0.1
        ax.imshow(frame, extent=(x0, x0 + thumb_w, y0, y0 + thumb_h), aspect='auto', zorder=2)
        if face_found[i] and width and height:
            bx, by, bw, bh = (float(v) for v in face_boxes[i])
            ax.add_patch(Rectangle((x0 + bx / width * thumb_w, y0 + thumb_h - (by + bh) / height * thumb_h),
                                   bw / width * thumb_w, bh / height * thumb_h, fill=False, lw=1.4,
                                   edgecolor='#30d040', zorder=3))
        ax.plot([t, t], [0.0, 0.1], color='0.3', lw=0.8)
        ax.text(t, -0.05, f'{t:.1f}s', ha='center', va='top', fontsize=7)
    for times in face_times or []:
        if len(times):
            first, last = float(min(times)), float(max(times))
            ax.broken_barh([(first, max(last - first, duration / 400))], (-0.3, 0.08), color='#e08a1e', zorder=3)
    if face_times is not None:
        ax.text(ax.get_xlim()[0], -0.34, 'face close-ups (micro-expression branch)', fontsize=7, va='top',
                color='#b06a10')
    for j, u in enumerate(utterances):
        y = -0.55 - 0.3 * (j % 3)
        ax.broken_barh([(float(u['start']), max(float(u['end']) - float(u['start']), 1e-3))], (y - 0.1, 0.2),
                       color='#4a7fc1', alpha=0.8)
        text = textwrap.shorten(str(u.get('text') or '(speech)'), 70, placeholder='…')
        ax.text(float(u['start']), y + 0.13, f"{float(u['start']):.1f}-{float(u['end']):.1f}s  {text}", fontsize=7,
                va='bottom')
    ax.set_yticks([])
    ax.set_xlabel('time (s)')
    for side in ('left', 'right', 'top'):
        ax.spines[side].set_visible(False)
    ax.text(0.0, 1.0, f"frames (face box where found; faces in {sum(bool(f) for f in face_found)}/{t_count})",
            transform=ax.transAxes, fontsize=8, va='bottom', color='0.3')
    ax.text(0.0, 0.08, 'utterances', transform=ax.transAxes, fontsize=8, color='0.3')
    fig.savefig(path)
    return path
