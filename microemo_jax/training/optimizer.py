"""AdamW with warmup + cosine decay, global-norm clipping and a weight-decay mask (config ``optim``).

Gradient accumulation is not an optax wrapper here: the train step loops over micro-batches itself
(``step.py``), so one call of the step is one optimiser update, the step counter, the schedule and the
data order stay the same whatever ``optim.grad_accum_steps`` is, and no accumulator lives in the
optimiser state (or in checkpoints).

Weight decay applies to weight matrices only. A parameter is *not* decayed when, after dropping a
leading scanned ``'layers'`` axis, it

* has rank < 2 (biases, norm scales, gates, class embeddings), or
* is a lookup table: its first logical axis is ``'vocab'``, ``'pos'``, ``'query'`` or unnamed (``None``)
  (token/position embeddings, temporal position tables, Q-Former query tokens, slot embeddings).

LoRA adapters (``nnx.LoRAParam``) are matrices and are always decayed (PEFT/LAVIS practice), even though
their rank dimension is unnamed. An output head such as ``('embed', 'vocab')`` is a matrix and decays.

The tanh gates of the global-local attention (parameters named ``*_gate``) can learn faster than the rest:
``optim.gate_lr_multiplier`` scales their AdamW updates. Adam moves every parameter by about the learning
rate per step whatever its gradient's size, so a gate that starts at 0 needs hundreds of steps to open
to where the branch it guards matters; the multiplier is the usual remedy (Flamingo-style gates).
"""
from __future__ import annotations

import jax
import optax
from flax import nnx

TABLE_AXES = ('vocab', 'pos', 'query', None)


def decays(var: nnx.Variable) -> bool:
    """Whether AdamW weight decay applies to this parameter (see the module docstring)."""
    if isinstance(var, nnx.LoRAParam):
        return True
    value = var.get_value()
    axes = var.get_metadata().get('axes')
    axes = tuple(axes) if axes is not None else (None,) * value.ndim
    if axes and axes[0] == 'layers':
        axes = axes[1:]
    return len(axes) >= 2 and axes[0] not in TABLE_AXES


def weight_decay_mask(params):
    """A tree like ``params`` (an nnx.State, or grads/updates of it) holding True where decay applies."""
    return jax.tree.map(lambda v: v.replace(decays(v)) if isinstance(v, nnx.Variable) else False, params,
                        is_leaf=lambda x: isinstance(x, nnx.Variable))


def is_gate(path) -> bool:
    """Whether a parameter path (tree path keys or names) ends in a tanh gate (``attn_gate``, ``mlp_gate``)."""
    if not path:
        return False
    last = path[-1]
    return str(getattr(last, 'key', last)).endswith('_gate')


def gate_mask(params):
    """A tree like ``params`` holding True at the tanh gates (see ``is_gate``)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, v: v.replace(is_gate(path)) if isinstance(v, nnx.Variable) else is_gate(path), params,
        is_leaf=lambda x: isinstance(x, nnx.Variable))


def _check(o, total_steps: int) -> None:
    problems = []
    if not o.lr > 0:
        problems.append(f"optim.lr={o.lr} must be > 0")
    if not 0 <= o.min_lr <= o.lr:
        problems.append(f"optim.min_lr={o.min_lr} must be in [0, optim.lr={o.lr}]")
    if not total_steps >= 1:
        problems.append(f"total_steps={total_steps} must be >= 1")
    elif not 0 <= o.warmup_steps < total_steps:
        problems.append(f"optim.warmup_steps={o.warmup_steps} must be in [0, total_steps={total_steps})")
    if o.grad_accum_steps < 1:
        problems.append(f"optim.grad_accum_steps={o.grad_accum_steps} must be >= 1")
    if o.clip_norm < 0 or o.weight_decay < 0:
        problems.append("optim.clip_norm and optim.weight_decay must be >= 0")
    if not o.get('gate_lr_multiplier', 1.0) > 0:
        problems.append(f"optim.gate_lr_multiplier={o.get('gate_lr_multiplier')} must be > 0")
    if problems:
        raise ValueError('invalid optimiser config:\n  ' + '\n  '.join(problems))


def make_schedule(cfg) -> optax.Schedule:
    """Learning rate at optimiser update k: 0 -> lr linearly over warmup_steps, cosine to min_lr at total_steps."""
    o = cfg.optim
    _check(o, cfg.total_steps)
    return optax.warmup_cosine_decay_schedule(init_value=0.0, peak_value=o.lr, warmup_steps=o.warmup_steps,
                                              decay_steps=cfg.total_steps, end_value=o.min_lr)


def make_optimizer(cfg) -> optax.GradientTransformation:
    """clip_by_global_norm(optim.clip_norm), AdamW(schedule, b1, b2, eps, weight_decay, mask), then the gates'
    updates times optim.gate_lr_multiplier (when it is not 1)."""
    o = cfg.optim
    adamw = optax.adamw(make_schedule(cfg), b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay,
                        mask=weight_decay_mask)
    parts = [optax.clip_by_global_norm(o.clip_norm)] if o.clip_norm > 0 else []
    parts.append(adamw)
    multiplier = float(o.get('gate_lr_multiplier', 1.0))
    if multiplier != 1.0:
        parts.append(optax.masked(optax.scale(multiplier), gate_mask))
    return optax.chain(*parts) if len(parts) > 1 else adamw
