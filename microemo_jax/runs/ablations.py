"""The demo ablations: train and score one demo corpus under each variant of the model, resumably.

    run_ablations(AblationSettings(out='runs/ablations'))      # what tools/ablations.py and the notebook call

Each variant trains stage 1 then stage 2 with the commands ``make demo`` runs (``python -m microemo_jax.train
--config configs/emer.py:demo ...``, the variant's overrides appended), then ``python -m microemo_jax.evaluate
--groups`` scores it on the held-out split, per scenario group with 95% intervals and the error of the times
it states. Every step is a subprocess, so this process never holds an accelerator while a run needs it.
``shuffled_faces`` trains nothing: it scores the full model with faces shuffled between clips.

All variants read one demo corpus: the same raw clips (``data.demo_seed``, ``data.demo_clips``) and the same
held-out videos (``data.validation_fraction``; the split hashes video names). A variant whose records differ
(``DataShapes``: e.g. ``model.audio.enabled=false`` reserves no audio tokens in the prompt) needs its own
prepared copy of that corpus; ``check_data`` says which, and refuses when ``data.dir`` names one prepared
dataset for all. Finished work is never redone: a stage with exported params, a variant with its summary.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

from microemo_jax.config import load_config
from microemo_jax.data.prepared import find_prepare_report
from microemo_jax.data.shapes import DataShapes
from microemo_jax.demo.corpus import GROUPS_FILE, write_groups
from microemo_jax.demo.first_use import demo_paths


@dataclasses.dataclass(frozen=True)
class Variant:
    title: str
    overrides: tuple[str, ...] = ()
    trained_as: str | None = None      # reuse another variant's trained model
    shuffle_faces: bool = False


VARIANTS = {
    'full': Variant('full model'),
    'no_micro': Variant('no micro-expression branch', ('model.micro_expression.enabled=false',)),
    'no_global_local': Variant('no global-local attention', ('model.global_local.enabled=false',)),
    'no_timestamps': Variant('no timestamp text', ('model.frame_encoder.timestamp_text=false',)),
    'no_audio': Variant('no audio branch', ('model.audio.enabled=false',)),
    'shuffled_faces': Variant('full model, faces shuffled between clips', trained_as='full', shuffle_faces=True),
}


class AblationError(RuntimeError):
    """The ablation cannot run as asked; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class AblationSettings:
    out: str = 'runs/ablations'
    seed: int | None = None               # data.demo_seed
    clips: int | None = None              # data.demo_clips
    val_fraction: float | None = None     # data.validation_fraction
    steps: int | None = None              # total_steps of each stage
    variants: tuple[str, ...] = tuple(VARIANTS)
    extra: tuple[str, ...] = ()           # more config overrides for every run (KEY=VALUE)
    config: str = 'configs/emer.py:demo'
    max_new_tokens: int = 256
    batch_size: int = 8
    shuffle_seed: int = 0
    bootstrap: int = 1000
    python: str = sys.executable

    def overrides(self) -> list[str]:
        """The config overrides every run of this ablation shares."""
        out = [f'data.demo_seed={self.seed}'] if self.seed is not None else []
        out += [f'data.demo_clips={self.clips}'] if self.clips is not None else []
        out += [f'data.validation_fraction={self.val_fraction}'] if self.val_fraction is not None else []
        out += [f'total_steps={self.steps}'] if self.steps is not None else []
        return out + list(self.extra)

    def record(self) -> dict:
        """What decides the results (checked on resume): not the output folder or the interpreter."""
        return {'config': self.config, 'overrides': self.overrides(), 'max_new_tokens': self.max_new_tokens,
                'shuffle_seed': self.shuffle_seed, 'bootstrap': self.bootstrap}


def checked_variants(names) -> list[str]:
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise AblationError(f"unknown variant(s) {unknown or '(none given)'}; choose from {list(VARIANTS)}")
    return list(dict.fromkeys(names))


def trained(name: str) -> str:
    """The variant whose trained model ``name`` scores."""
    return VARIANTS[name].trained_as or name


def variant_config(s: AblationSettings, name: str, stage: int = 1):
    return load_config(s.config, s.overrides() + list(VARIANTS[trained(name)].overrides) + [f'stage={stage}'])


def check_data(s: AblationSettings, names) -> dict[str, str]:
    """variant -> the prepared data it trains on; a note for each variant whose records differ from the full
    model's (own prepared copy of the same corpus), an AblationError where that copy cannot exist."""
    base = variant_config(s, 'full')
    base_shapes = DataShapes.from_config(base)
    out = {}
    for name in names:
        cfg = variant_config(s, name)
        shapes = DataShapes.from_config(cfg)
        data = os.path.expanduser(cfg.data.dir) if cfg.data.dir else demo_paths(cfg)[1]
        if shapes != base_shapes:
            diff = {k: (getattr(base_shapes, k), getattr(shapes, k)) for k in dataclasses.asdict(shapes)
                    if getattr(base_shapes, k) != getattr(shapes, k)}
            if cfg.data.dir:
                raise AblationError(f"variant {name!r} changes the record layout ({diff}: full model -> {name}), so "
                                    f"it cannot read data.dir={cfg.data.dir}; leave data.dir empty (the demo "
                                    f"prepares a matching copy of the same corpus) or drop the variant")
            print(f"note: variant {name!r} changes the record layout ({diff}); it trains on its own prepared "
                  f"copy of the same raw corpus ({data}), with the same held-out videos", flush=True)
        out[name] = data
    return out


def _run(cmd: list[str], log: str) -> None:
    """Run one command, its output shown and appended to ``log``; AblationError naming the log if it fails."""
    print('$ ' + ' '.join(cmd), flush=True)
    with open(log, 'a') as f:
        f.write('$ ' + ' '.join(cmd) + '\n')
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as p:
            for line in p.stdout:
                f.write(line)
                sys.stdout.write(line)
        code = p.wait()
    if code:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise AblationError(f"`{' '.join(cmd[2:4])}` failed (exit {code}); the end of {log}:\n{tail}")


def train_variant(s: AblationSettings, name: str) -> str:
    """Stage 1 then stage 2 of a variant, as ``make demo`` runs them (skipping a finished stage); its params."""
    work = os.path.join(s.out, name)
    os.makedirs(work, exist_ok=True)
    extra = [f'--config.{o}' for o in s.overrides() + list(VARIANTS[name].overrides)]
    train = [s.python, '-m', 'microemo_jax.train', '--config', s.config]
    stages = ([*train, '--workdir', os.path.join(work, 'stage1'), *extra],
              [*train, '--workdir', os.path.join(work, 'stage2'), '--config.stage=2',
               f"--config.init.params={os.path.join(work, 'stage1', 'params')}", *extra])
    for k, cmd in enumerate(stages, 1):
        if not os.path.isfile(os.path.join(work, f'stage{k}', 'params', 'training.json')):
            _run(cmd, os.path.join(work, 'log.txt'))
    return os.path.join(work, 'stage2', 'params')


def groups_for(data: str, out: str) -> str:
    """The groups file of the demo corpus a prepared dataset came from (written into ``out`` if it lacks one)."""
    with open(find_prepare_report(data)) as f:
        raw = json.load(f).get('raw')
    if raw and os.path.isfile(os.path.join(raw, GROUPS_FILE)):
        return os.path.join(raw, GROUPS_FILE)
    if not raw or not os.path.isfile(os.path.join(raw, 'corpus.json')):
        raise AblationError(f"{data} was not prepared from a demo corpus (its raw folder {raw!r} has no "
                            f"corpus.json): no scenario groups to score by")
    return write_groups(raw, os.path.join(out, GROUPS_FILE))


def held_out(data: str) -> list[str]:
    """The validation videos of a prepared dataset (its splits.csv)."""
    with open(os.path.join(os.path.dirname(find_prepare_report(data)), 'splits.csv')) as f:
        return sorted(line.split(',')[0] for line in f.read().splitlines()[1:] if line.endswith(',validation'))


def evaluate_variant(s: AblationSettings, name: str, params: str, data: str) -> dict:
    out = os.path.join(s.out, name, 'evaluate')
    cmd = [s.python, '-m', 'microemo_jax.evaluate', '--params', params, '--data', data, '--split', 'validation',
           '--out', out, '--groups', groups_for(data, s.out), '--max-new-tokens', str(s.max_new_tokens),
           '--batch-size', str(s.batch_size), '--bootstrap', str(s.bootstrap)]
    if VARIANTS[name].shuffle_faces:
        cmd += ['--shuffle-faces', str(s.shuffle_seed)]
    os.makedirs(os.path.join(s.out, name), exist_ok=True)
    _run(cmd, os.path.join(s.out, name, 'log.txt'))
    with open(os.path.join(out, 'summary.json')) as f:
        return json.load(f)


def _check_resume(s: AblationSettings) -> None:
    path = os.path.join(s.out, 'ablation.json')
    if os.path.isfile(path):
        with open(path) as f:
            before = json.load(f)
        if before != s.record():
            raise AblationError(f"{s.out} holds an ablation run with other settings ({before} != {s.record()}); "
                                f"use a new --out, or the same settings to resume it")
    os.makedirs(s.out, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(s.record(), f, indent=2)


def run_ablations(s: AblationSettings) -> dict[str, dict]:
    """variant -> its evaluate summary, training and scoring what is not done yet (see the module doc)."""
    names = checked_variants(s.variants)
    _check_resume(s)
    data = check_data(s, names)
    results, held = {}, {}
    for name in names:
        summary_path = os.path.join(s.out, name, 'evaluate', 'summary.json')
        if os.path.isfile(summary_path):
            print(f'{name}: done before ({summary_path})', flush=True)
            with open(summary_path) as f:
                results[name] = json.load(f)
            continue
        params = train_variant(s, trained(name))
        held[name] = held_out(data[name])
        if held[name] != next(iter(held.values())):
            raise AblationError(f"variant {name!r} holds out other videos than {next(iter(held))!r}: its prepared "
                                f"data {data[name]} was split differently; delete it and run again")
        results[name] = evaluate_variant(s, name, params, data[name])
    return results
