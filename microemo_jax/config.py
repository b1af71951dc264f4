"""Loading ``configs/*.py`` (big_vision style) and applying ``--config.KEY=VALUE`` overrides.

``load_config('configs/emer.py:demo', ['model.llm.num_layers=2'])`` imports the file, calls
``get_config('demo')``, applies each override with the type of the field it replaces, validates and
locks the result. Unknown keys (with a did-you-mean), unparsable values and wrong types raise
``ConfigError`` naming the key; nothing is silently ignored.
"""
from __future__ import annotations

import ast
import difflib
import importlib.util
import os
import sys
from typing import Sequence

import ml_collections

from microemo_jax.config_checks import value_problems


class ConfigError(ValueError):
    """A config file, key or value is wrong; the message says which and what is accepted."""


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """``spec`` is 'path/to/config.py' or 'path/to/config.py:ARG'; overrides are 'a.b.c=value'."""
    path, _, arg = spec.partition(':')
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} not found")
    module_spec = importlib.util.spec_from_file_location(f'_microemo_config_{abs(hash(path))}', path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # a broken config file: say which
        raise ConfigError(f"{path}: could not be imported: {e}") from e
    if not hasattr(module, 'get_config'):
        raise ConfigError(f"{path} defines no get_config(arg)")
    try:
        cfg = module.get_config(arg or None)
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from e
    for item in overrides:
        key, sep, value = item.partition('=')
        if not sep:
            raise ConfigError(f"override {item!r} must look like KEY=VALUE")
        set_value(cfg, key.strip(), value)
    validate(cfg)
    cfg.lock()
    return cfg


def set_value(cfg: ml_collections.ConfigDict, dotted: str, text: str) -> None:
    """Set ``cfg.<dotted>`` from command-line text, converted to the type of the current value."""
    parts = dotted.split('.')
    node = cfg
    for i, part in enumerate(parts):
        where = '.'.join(parts[:i]) or '<root>'
        if not isinstance(node, ml_collections.ConfigDict):
            raise ConfigError(f"config key {dotted!r}: {where} is a {type(node).__name__}, not a section")
        if part not in node:
            close = difflib.get_close_matches(part, list(node.keys()), n=3)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ''
            raise ConfigError(f"unknown config key {dotted!r}: {where} has no field {part!r}{hint} "
                              f"(fields: {', '.join(sorted(node.keys()))})")
        if i < len(parts) - 1:
            node = node[part]
    current = node[parts[-1]]
    if isinstance(current, ml_collections.ConfigDict):
        raise ConfigError(f"config key {dotted!r} is a section; set one of its fields "
                          f"({', '.join(sorted(current.keys()))})")
    node[parts[-1]] = parse_value(dotted, text, current)


def parse_value(key: str, text: str, current):
    """Convert ``text`` to the type of ``current`` (bool, int, float, str, tuple or None)."""
    text = text.strip()
    if isinstance(current, bool):
        lowered = text.lower()
        if lowered in ('true', '1', 'yes'):
            return True
        if lowered in ('false', '0', 'no'):
            return False
        raise ConfigError(f"config key {key!r} is a bool; got {text!r} (use true/false)")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"config key {key!r} is an int; got {text!r}") from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"config key {key!r} is a float; got {text!r}") from None
    if isinstance(current, str):
        return text
    if isinstance(current, (tuple, list)) or current is None:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            if current is None:
                return text
            raise ConfigError(f"config key {key!r} is a tuple; got {text!r} (write e.g. \"('a', 'b')\")") from None
        if current is not None and not isinstance(value, (tuple, list)):
            raise ConfigError(f"config key {key!r} is a tuple; got {type(value).__name__} {text!r}")
        return tuple(value) if isinstance(value, list) else value
    raise ConfigError(f"config key {key!r} holds a {type(current).__name__}, which cannot be set from the command line")




def _training_problems(cfg: ml_collections.ConfigDict) -> list[str]:
    """Step counts: each bad value is blamed by its own name (a negative total_steps is not a warmup problem)."""
    problems = []

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)
    total = cfg.get('total_steps')
    total_ok = total is None or (is_int(total) and total >= 1)
    if not total_ok:
        problems.append(f"total_steps={total!r} must be a whole number >= 1 (optimiser updates of the run)")
    for key in ('log_every', 'checkpoint_every'):
        value = cfg.get(key)
        if value is not None and not (is_int(value) and value >= 1):
            problems.append(f"{key}={value!r} must be a whole number >= 1 (steps)")
    train = cfg.get('train')
    if train is not None:
        for key, low in (('keep_checkpoints', 1), ('max_steps_per_run', 0), ('validate_every', 0),
                         ('validation_batches', 0), ('loss_chunk', 0)):
            value = train.get(key)
            if value is not None and not (is_int(value) and value >= low):
                problems.append(f"train.{key}={value!r} must be a whole number >= {low}")
    optim = cfg.get('optim')
    if optim is not None and total is not None and total_ok:  # only meaningful against a valid total_steps
        warmup = optim.get('warmup_steps')
        if warmup is not None and not (is_int(warmup) and 0 <= warmup < total):
            problems.append(f"optim.warmup_steps={warmup!r} must be in [0, total_steps={total})")
        accum = optim.get('grad_accum_steps')
        if accum is not None and not (is_int(accum) and accum >= 1):
            problems.append(f"optim.grad_accum_steps={accum!r} must be a whole number >= 1")
    return problems


def _rl_problems(cfg: ml_collections.ConfigDict) -> list[str]:
    """The stage-3 section ``rl`` beyond ``config_checks``' per-key tables (checked whatever the stage: a config
    file's defaults must be usable)."""
    rl = cfg.get('rl')
    if rl is None:
        return ["stage=3 needs the config's rl section (see configs/emer.py)"] if cfg.get('stage') == 3 else []
    problems = []
    if isinstance(rl.get('group_size'), int) and rl.group_size < 2:
        problems.append(f"rl.group_size={rl.group_size} must be >= 2: advantages compare the samples of a group")
    if isinstance(rl.get('steps'), int) and isinstance(rl.get('warmup_steps'), int) \
            and not rl.warmup_steps < rl.steps:
        problems.append(f"rl.warmup_steps={rl.warmup_steps} must be below rl.steps={rl.steps}")
    rewards = rl.get('rewards')
    if not rewards or not isinstance(rewards, tuple):
        problems.append(f"rl.rewards={rewards!r} must name at least one reward, e.g. ('ov', 'format')")
    elif 'wheel' in rewards and not rl.get('wheel'):
        problems.append("rl.rewards has 'wheel' but rl.wheel names no file (MER's wheel_mapping.npz or its JSON)")
    return problems


def validate(cfg: ml_collections.ConfigDict) -> None:
    """Cross-field checks that would otherwise fail deep inside model construction or the first step."""
    training = _training_problems(cfg) + value_problems(cfg)  # every choice and bounded number: config_checks.py
    m = cfg.get('model')
    if m is None:
        if training:
            raise ConfigError('invalid config:\n  ' + '\n  '.join(training))
        return
    problems = training
    d = cfg.get('data')
    if d is not None:
        if not isinstance(d.get('align_faces', True), bool):
            problems.append(f"data.align_faces={d.get('align_faces')!r} must be True or False")
    if cfg.get('stage') not in (1, 2, 3):
        problems.append(f"stage={cfg.get('stage')!r} must be 1 (alignment), 2 (instruction tuning) or 3 "
                        f"(reinforcement, GRPO)")
    problems += _rl_problems(cfg)
    for name in ('vision', 'image_qformer', 'video_qformer', 'audio_qformer'):
        sub = m.get(name)
        if sub is not None and sub.hidden_size % sub.num_heads:
            problems.append(f"model.{name}.hidden_size={sub.hidden_size} is not divisible by num_heads={sub.num_heads}")
    llm = m.get('llm')
    if llm is not None:
        if llm.num_heads % llm.num_kv_heads:
            problems.append(f"model.llm.num_heads={llm.num_heads} is not a multiple of num_kv_heads={llm.num_kv_heads}")
    if m.get('audio') is not None and m.audio.d_model % m.audio.encoder_attention_heads:
        problems.append("model.audio.d_model is not divisible by encoder_attention_heads")
    me = m.get('micro_expression')
    if me is not None:
        if me.hidden_size % me.num_heads:
            problems.append("model.micro_expression.hidden_size is not divisible by num_heads")
    if m.get('num_frames', 1) > m.video_qformer.max_frames:
        problems.append(f"model.num_frames={m.num_frames} exceeds model.video_qformer.max_frames="
                        f"{m.video_qformer.max_frames} (size of the frame-position embedding)")
    if problems:
        raise ConfigError('invalid config:\n  ' + '\n  '.join(problems))


def config_from_argv(argv: Sequence[str]) -> tuple[ml_collections.ConfigDict, list[str]]:
    """Split ``--config SPEC`` and ``--config.KEY=VALUE`` (or ``--config.KEY VALUE``) out of argv."""
    spec, overrides, rest = None, [], []
    it = iter(argv)
    for arg in it:
        if arg == '--config':
            spec = next(it, None)
        elif arg.startswith('--config='):
            spec = arg.split('=', 1)[1]
        elif arg.startswith('--config.'):
            body = arg[len('--config.'):]
            if '=' not in body:
                value = next(it, None)
                if value is None:
                    raise ConfigError(f"{arg} needs a value")
                body = f'{body}={value}'
            overrides.append(body)
        else:
            rest.append(arg)
    if spec is None:
        raise ConfigError("--config PATH[:VARIANT] is required (e.g. --config configs/emer.py:demo)")
    return load_config(spec, overrides), rest


if __name__ == '__main__':  # print a resolved config: python -m microemo_jax.config --config ... [--config.X=Y]
    try:
        resolved, _ = config_from_argv(sys.argv[1:])
    except ConfigError as e:
        sys.exit(f"error: {e}")
    print(resolved)
