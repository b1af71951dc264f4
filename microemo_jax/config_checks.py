"""The config's values checked in one place, by table: every choice-valued key and every bounded number.

``config.validate`` calls ``value_problems(cfg)`` so that a wrong value is refused when the config is
loaded, naming the key and what it accepts, instead of failing per clip deep in ``prepare`` (an unknown
``data.sampling`` skipped every clip) or training on a NaN learning rate.

* ``CHOICES``: every key whose value is one of a fixed set of words (a tuple value, such as
  ``model.lora.targets``, must hold only such words). Every string-valued key of a config is either here
  or in ``FREE_TEXT`` (paths and names): ``tests/test_config.py`` walks every variant and fails on a
  string key that is in neither, so a new switch cannot skip the check. The sets mirror the modules that
  act on them (config is a foundation and imports none of them); the same test compares them.
* ``RANGES``: numbers with bounds (learning rates, betas, fractions, LoRA sizes); ``(low, high)`` with
  ``'['``/``'('`` marking whether each end is allowed. Keys a config lacks are not checked.
* Every float anywhere in the config must be finite, and every ``*dropout`` in [0, 1).
"""
from __future__ import annotations

import math

import ml_collections

DTYPES = ('float32', 'bfloat16', 'float16')
CHOICES = {
    'model.dtype': DTYPES,
    'model.param_dtype': DTYPES,
    'model.frozen_param_dtype': DTYPES,
    'model.remat_policy': ('none', 'full', 'dots_saveable', 'nothing_saveable', 'dots_with_no_batch_dims_saveable',
                           'everything_saveable'),                                                 # models/stack.py
    'model.attention_impl': ('', 'xla', 'cudnn', 'reference'),                                  # models/layers.py
    'model.frame_encoder.timestamp_tokenizer': ('bert', 'llm'),
    'model.micro_expression.face_encoder': ('shared', 'separate'),
    'model.micro_expression.tubelets': ('anchor', 'apex'),                               # data/faces/spotting.py
    'model.micro_expression.face_input': ('crops', 'residuals'),                       # models/micro_expression.py
    'model.kernel_init': ('bert', 'fan_in'),                                             # models/scratch_init.py
    'model.llm.rope_type': ('default', 'llama3', 'linear', 'dynamic', 'yarn'),                   # models/rope.py
    'model.lora.targets': ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'),  # llama.py
    'data.sampling': ('uniform', 'random'),                                                       # data/video.py
    'data.question': ('description', 'ov'),                                                      # data/prompt.py
    'data.face_detector': ('blazeface', 'blazeface_full', 'haar'),                            # data/faces/detector.py
    'data.bench_question': ('benchmark', 'description'),                                         # data/raw/bench.py
    'data.demo_tokenizer': ('llama', 'qwen'),                                              # data/demo_tokenizers.py
    'rl.loss': ('grpo', 'dr_grpo'),                                                             # training/grpo.py
    'rl.question': ('description', 'ov', 'both'),                                                # runs/rl_data.py
}
# rl.rewards names registered rewards (training/rewards.py: pluggable, so not a fixed set; train checks the names)
FREE_TEXT = ('variant', 'data.dir', 'data.demo_cache', 'init.params', 'init.face_encoder', 'rl.wheel', 'rl.synonyms', 'rl.rewards')
_INF = math.inf
RANGES = {
    'optim.lr': ((0.0, 1.0), '(]'),
    'optim.min_lr': ((0.0, 1.0), '[]'),
    'optim.weight_decay': ((0.0, 1.0), '[]'),
    'optim.b1': ((0.0, 1.0), '[)'),
    'optim.b2': ((0.0, 1.0), '[)'),
    'optim.eps': ((0.0, 1.0), '(]'),
    'optim.clip_norm': ((0.0, _INF), '[)'),
    'data.validation_fraction': ((0.0, 1.0), '[)'),
    'model.video_centring.gain': ((0.0, _INF), '[)'),
    'model.video_centring.momentum': ((0.0, 1.0), '[)'),
    'model.answer_words.weight': ((0.0, _INF), '[)'),
    'data.text_dropout': ((0.0, 1.0), '[)'),
    'data.batch_size': ((1, _INF), '[)'),
    'data.max_seq_len': ((1, _INF), '[)'),
    'data.jpeg_quality': ((1, 100), '[]'),
    'data.num_workers': ((0, _INF), '[)'),
    'model.lora.rank': ((0, _INF), '[)'),
    'model.lora.alpha': ((0.0, _INF), '()'),
    'model.num_frames': ((1, _INF), '[)'),
    'model.max_utterances': ((1, _INF), '[)'),
    'model.window_size': ((0, _INF), '[)'),
    'model.window_stride': ((0, _INF), '[)'),
    'rl.steps': ((1, _INF), '[)'),                  # stage 3 (configs/emer.py _stage3, docs/training.md)
    'rl.batch_size': ((1, _INF), '[)'),
    'rl.group_size': ((1, _INF), '[)'),
    'rl.mu': ((1, _INF), '[)'),
    'rl.lr': ((0.0, 1.0), '(]'),
    'rl.warmup_steps': ((0, _INF), '[)'),
    'rl.beta': ((0.0, _INF), '[)'),
    'rl.epsilon': ((0.0, 1.0), '()'),
    'rl.temperature': ((0.0, _INF), '()'),
    'rl.top_p': ((0.0, 1.0), '(]'),
    'rl.top_k': ((0, _INF), '[)'),
    'rl.max_new_tokens': ((1, _INF), '[)'),
    'rl.length_target': ((0, _INF), '[)'),
    'rl.log_every': ((1, _INF), '[)'),
    'rl.checkpoint_every': ((1, _INF), '[)'),
    'rl.eval_every': ((0, _INF), '[)'),
    'rl.eval_clips': ((0, _INF), '[)'),
}


def _get(cfg, dotted: str):
    node = cfg
    for part in dotted.split('.'):
        if not isinstance(node, (ml_collections.ConfigDict, dict)) or part not in node:
            return None
        node = node[part]
    return node


def _leaves(cfg, prefix: str = ''):
    for key, value in cfg.items():
        if isinstance(value, (ml_collections.ConfigDict, dict)):
            yield from _leaves(value, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}', value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _in_range(value, bounds, ends) -> bool:
    (low, high), (left, right) = bounds, ends
    return (value >= low if left == '[' else value > low) and (value <= high if right == ']' else value < high)


def _shown(bounds, ends) -> str:
    low, high = bounds
    return f"{ends[0]}{low:g}, {'inf' if high == _INF else f'{high:g}'}{ends[1]}"


def value_problems(cfg) -> list[str]:
    """One line per bad value: a word outside its choices, a number out of its range, a NaN or infinity."""
    problems = []
    for key, value in _leaves(cfg):
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{key}={value!r} must be a finite number")
        elif key.rsplit('.', 1)[-1] == 'dropout' and not (_is_number(value) and 0 <= value < 1):
            problems.append(f"{key}={value!r} must be a rate in [0, 1)")
    for key, allowed in CHOICES.items():
        value = _get(cfg, key)
        if value is None:
            continue
        values = value if isinstance(value, (tuple, list)) else (value,)
        bad = [v for v in values if v not in allowed]
        choices = ', '.join(repr(a) for a in allowed)
        if bad and isinstance(value, (tuple, list)):
            problems.append(f"{key}={value!r}: {', '.join(repr(v) for v in bad)} is not one of {choices}")
        elif bad:
            problems.append(f"{key}={value!r} must be {choices}")
    for key, (bounds, ends) in RANGES.items():
        value = _get(cfg, key)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue  # absent, or already said above
        if not _is_number(value) or not _in_range(value, bounds, ends):
            problems.append(f"{key}={value!r} must be a number in {_shown(bounds, ends)}")
    gain, marker = _get(cfg, 'model.video_centring.gain'), _get(cfg, 'model.video_centring.marker')
    if marker and _is_number(gain) and gain == 0:
        problems.append("model.video_centring.marker=True needs the centring (model.video_centring.gain > 0): "
                        "the marker is added to the centred tokens")
    lr, min_lr = _get(cfg, 'optim.lr'), _get(cfg, 'optim.min_lr')
    if _is_number(lr) and _is_number(min_lr) and min_lr > lr:
        problems.append(f"optim.min_lr={min_lr!r} must not exceed optim.lr={lr!r} (the schedule decays from lr to it)")
    return problems
