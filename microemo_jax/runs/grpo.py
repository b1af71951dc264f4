"""Stage 3: reinforcement fine-tuning with GRPO, from a stage-2 parameter folder to ``WORKDIR/params``.

Per step: B clips of the train split (``rl.question``'s records) -> their prompts -> G sampled answers per clip
(``runs/rollouts.py``; behaviour log-probabilities kept) -> rewards from the emotion metrics
(``training/rewards.py``) -> the reference's log-probabilities -> ``rl.mu`` GRPO updates
(``training/grpo_step.py``). The policy trains what stage 2 trains; the reference is the starting model's copy of
exactly those parameters; the frozen towers are one copy both read.

As stages 1-2 (``runs/supervised.py``): the workdir lock, Orbax checkpoints with the Grain iterator state (the
data position) and the train state, whose ``rng`` is the rollouts' key, so a resumed run samples the answers an
uninterrupted one would; SIGTERM or a preemption notice saves and exits; ``WORKDIR/params`` at the end. A
non-finite reward drops its group from the update and a non-finite loss skips the update; both are counted in
metrics.jsonl (``nonfinite_groups``, ``nonfinite_steps``) and training goes on. Every ``rl.eval_every`` steps
(0: never), before the first step and at the end, the held-out split is answered greedily and rewarded the same way (``val_reward_*``).
"""
from __future__ import annotations

import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from microemo_jax.data import pipeline
from microemo_jax.data.records.tfds_builder import splits
from microemo_jax.metrics import load_synonyms, load_wheel
from microemo_jax.params import export_params, load_params, load_tokenizers, write_inference_files
from microemo_jax.runs.rl_data import question_records
from microemo_jax.runs.rollouts import Rollouts, local_rows, strip_answers
from microemo_jax.runs.workdir import TrainError, check_tokenizers, resolve_data_dir, workdir_lock
from microemo_jax.sharding import make_mesh, split_batch
from microemo_jax.training import distributed
from microemo_jax.training.checkpointing import Checkpointer, saved_steps
from microemo_jax.training.grpo_step import make_grpo_step, make_logprob_fn
from microemo_jax.training.logger import MetricsLogger
from microemo_jax.training.preemption import PreemptionGuard
from microemo_jax.training.rewards import RewardContext, check_names
from microemo_jax.training.rl_config import run_config
from microemo_jax.training.state import abstract_train_state, init_train_state, model_params, shardings_of
from microemo_jax.training.step import batch_shards, device_batch

LOGGED = ('reward_mean', 'reward_std', 'kl', 'clip_fraction', 'response_length', 'entropy', 'ratio_mean',
          'valid_groups', 'nonfinite_groups', 'reward_errors')


def run(cfg, workdir: str) -> dict:
    """Stage 3 per ``cfg`` (``stage=3``, ``init.params`` a stage-2 folder) in ``workdir``; the last logged metrics."""
    workdir = os.path.abspath(os.path.expanduser(workdir))
    with workdir_lock(workdir):
        return _run(run_config(cfg), workdir)


def _say(line: str) -> None:
    if jax.process_index() == 0:
        print(line, flush=True)


def _setup_data(cfg, mesh):
    rl = cfg.rl
    split_batch(rl.batch_size, processes=jax.process_count(), shards=batch_shards(mesh, cfg.sharding_rules),
                accum_steps=cfg.optim.grad_accum_steps, mesh=mesh, what='rl.batch_size')
    data_dir = resolve_data_dir(cfg)
    train, gold, left_out, width = question_records(pipeline.open_split(data_dir, 'train'), rl.question)
    if not len(train):
        raise TrainError(f"{data_dir}: the train split has no {rl.question!r} record with gold labels (openset) to "
                         f"reward ({left_out} without labels); set rl.question or prepare labelled data")
    val, val_gold = None, {}
    if 'validation' in splits(data_dir):
        val, val_gold, _, val_width = question_records(pipeline.open_split(data_dir, 'validation'), rl.question)
        val, width = (val, max(width, val_width)) if len(val) else (None, width)
    dropped = f', {left_out} without labels left out' if left_out else ''
    _say(f"stage 3: {len(train)} training clips ({rl.question!r} question){dropped}; "
         f"{len(val) if val is not None else 0} held-out clips")
    # every batch is cut to the longest prompt (rounded up to 16 tokens): one static width for the whole run
    width = min(-(-width // 16) * 16, cfg.data.max_seq_len)
    return data_dir, train, val, {**gold, **val_gold}, width


def _run(cfg, workdir: str) -> dict:
    if not cfg.init.params:
        raise TrainError("stage 3 starts from a trained model: set --config.init.params=STAGE2_WORKDIR/params")
    check_names(cfg.rl.rewards)                 # a misspelt reward fails here, before anything compiles
    os.makedirs(workdir, exist_ok=True)
    rl, rules = cfg.rl, cfg.sharding_rules
    mesh = make_mesh(cfg.mesh)
    data_dir, train_view, val_view, gold, width = _setup_data(cfg, mesh)
    train_iter = pipeline.make_iterator(train_view, cfg, train=True)
    # the data's tokenizers must be the ones init.params (and the checkpoints) learned, before anything compiles
    tokenizers = check_tokenizers(cfg, workdir, data_dir, resuming=bool(saved_steps(workdir)))
    tokenizer, _ = load_tokenizers(cfg.init.params)
    context = RewardContext(synonyms=load_synonyms(rl.synonyms or None), wheel=load_wheel(rl.wheel) if rl.wheel else None,
                            max_new_tokens=rl.max_new_tokens, length_target=rl.length_target)

    abstract = abstract_train_state(cfg, mesh)
    start = load_params(cfg.init.params, model_params(abstract))
    graphdef, state, frozen = init_train_state(cfg, mesh, abstract=abstract, restored=start)
    # The reference: the starting values of the trained parameters (a copy: the state is donated and updated);
    # the frozen towers are not copied. A resumed run rebuilds it the same way, from init.params.
    reference = jax.tree.map(jnp.copy, state.params)
    distributed.barrier('microemo: stage-3 state initialised')
    ckpt = Checkpointer.from_config(workdir, cfg)
    restored, _, _ = ckpt.restore_latest(abstract.state, train_iter, report=_say)
    if restored is not None:
        state = restored
        _say(f'resumed from {ckpt.directory} at step {int(jax.device_get(state.step))}')
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
        f.write(cfg.to_json_best_effort(indent=2))

    rollouts = Rollouts(graphdef, cfg, mesh, tokenizer, gold, context)
    state_sh, frozen_sh = shardings_of(abstract.state), shardings_of(abstract.frozen)
    step_fn = make_grpo_step(graphdef, cfg, mesh, state_sh, frozen_sh)
    ref_fn = make_logprob_fn(graphdef, cfg, mesh, state_sh.params, frozen_sh)
    eos = jnp.asarray(rollouts.eos)
    step = int(jax.device_get(state.step))
    logger = MetricsLogger(workdir, cfg.total_steps, log_every=cfg.log_every, resume_step=step,
                           averaged=LOGGED + tuple(f'reward_{n}' for n in rl.rewards))
    stop_at = min(cfg.total_steps, step + cfg.train.max_steps_per_run) if cfg.train.max_steps_per_run else None
    last, warned, t0 = {}, set(), time.time()
    if val_view is not None and rl.eval_every and step == 0:     # the starting model's held-out score: step 0
        logger.log_eval(0, heldout(rollouts, state.params, frozen, val_view, cfg, mesh, width))
    with PreemptionGuard() as guard:
        while step < cfg.total_steps:
            batch = next(train_iter)
            dev = device_batch(strip_answers(batch, width), mesh, rules)
            key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), 1)  # the state's rng: resumes exactly
            tokens, old_logp = rollouts.sample(state.params, frozen, dev, key)
            scored = rollouts.reward(batch['names'], tokens, rl.group_size)
            ref_logp = ref_fn(reference, frozen, dev, tokens)
            state, metrics = step_fn(state, frozen, dev, dict(tokens=tokens, old_logp=old_logp, ref_logp=ref_logp,
                                                              rewards=scored.rewards, parts=scored.parts,
                                                              valid=scored.valid, eos=eos))
            step += 1
            if t0:
                _say(f'first step of this run done in {time.time() - t0:.1f}s (compiles included)')
                t0 = 0.0
            metrics = {**metrics, **_host_counts(scored)}
            for message in scored.errors[:3]:
                if message.split(' on ')[0] not in warned:
                    warned.add(message.split(' on ')[0])
                    print(f'warning: {message} (scored 0; further ones are only counted)', flush=True)
            last = logger.log(step, metrics) or last
            stop = (guard.should_stop(step) or step == stop_at) and step < cfg.total_steps
            if stop or ckpt.due(step) or step == cfg.total_steps:
                # a skipped (non-finite) update keeps the previous state: what is saved is always a good one
                ckpt.save(step, state, train_iter, force=True)
            if val_view is not None and rl.eval_every and (step % rl.eval_every == 0 or step == cfg.total_steps):
                val = heldout(rollouts, state.params, frozen, val_view, cfg, mesh, width)
                logger.log_eval(step, val)
                last = {**last, **val}
            if stop:
                ckpt.wait()
                why = 'train.max_steps_per_run' if step == stop_at else 'a stop signal'
                _say(f'stopping at step {step} ({why}); a checkpoint was saved, re-run to resume')
                logger.close()
                return last
    ckpt.wait()
    logger.close()
    export_params(os.path.join(workdir, 'params'), cfg, graphdef, state, frozen, stamp=False)  # stamped below
    if jax.process_index() == 0:
        write_inference_files(os.path.join(workdir, 'params'), cfg, data_dir, expected=tokenizers,
                              extra={'steps': step, 'init_params': os.path.abspath(cfg.init.params),
                                     'last_metrics': {k: float(v) for k, v in last.items()
                                                      if isinstance(v, (int, float)) and math.isfinite(v)}})
    ckpt.close()
    _say(f'finished {step} steps; parameters exported to {os.path.join(workdir, "params")}')
    return last


def _host_counts(scored) -> dict:
    """The host-side counts of a step, summed over processes."""
    counts = np.asarray([len(scored.errors), scored.nonfinite_groups], np.float64)
    if jax.process_count() > 1:
        counts = np.asarray(multihost_utils.process_allgather(counts)).sum(axis=0)
    return {'reward_errors': float(counts[0]), 'nonfinite_groups': float(counts[1])}


def heldout(rollouts: Rollouts, params, frozen, view, cfg, mesh, width: int) -> dict:
    """Greedy answers to the held-out clips (``rl.eval_clips`` of them, 0: all), rewarded as in training:
    val_reward_mean, val_reward_<name>, val_response_length, val_clips (over all processes); with
    ``rl.question='both'`` also each question's own, as val_<question>_reward_mean, val_<question>_reward_<name>."""
    rl, names = cfg.rl, tuple(cfg.rl.rewards)
    kinds = ('description', 'ov')
    batches = pipeline.make_iterator(view, cfg, train=False, num_workers=0)
    limit = math.ceil(rl.eval_clips / rl.batch_size) if rl.eval_clips else None
    sums = np.zeros((len(kinds), 3 + len(names)), np.float64)      # per question: clips, total, length, components
    first = None
    for i, batch in enumerate(batches):
        if limit is not None and i >= limit:
            break
        dev = device_batch(strip_answers(batch, width), mesh, cfg.sharding_rules)
        tokens, _ = rollouts.sample(params, frozen, dev, jax.random.key(0), greedy=True)
        scored = rollouts.reward(batch['names'], tokens, 1)
        for c, total, part, name in zip(scored.completions, local_rows(scored.rewards), local_rows(scored.parts),
                                        batch['names']):
            if not str(name):
                continue                              # evaluation's padding clips
            sums[kinds.index(c.question)] += np.concatenate([[1.0, total, c.tokens], part])
            first = first or c
    if jax.process_count() > 1:
        sums = np.asarray(multihost_utils.process_allgather(sums)).sum(axis=0)

    def block(row, prefix):
        n = max(row[0], 1.0)
        out = {f'{prefix}clips': float(row[0]), f'{prefix}reward_mean': row[1] / n,
               f'{prefix}response_length': row[2] / n}
        out.update({f'{prefix}reward_{k}': row[3 + i] / n for i, k in enumerate(names)})
        return out

    out = block(sums.sum(axis=0), 'val_')
    if rl.question == 'both':
        for kind, row in zip(kinds, sums):
            out.update(block(row, f'val_{kind}_'))
    if first is not None:
        _say(f'held-out answer ({first.name}, gold {list(first.gold)}): {first.text[:300]}')
    return out
