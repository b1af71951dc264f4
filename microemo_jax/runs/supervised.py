"""Stages 1 and 2: the supervised training loop, from a config and a workdir to ``WORKDIR/params``.

Resumes by itself from WORKDIR/checkpoints (same data order, same random numbers), saves on SIGTERM or a
preemption notice and at intervals, checks every step's loss for finiteness one step late (no host sync in
the step), validates every ``train.validate_every`` steps, logs, and exports the parameter folder at the end.
"""
from __future__ import annotations

import itertools
import os
import time

import jax

from microemo_jax.data import pipeline
from microemo_jax.data.records.tfds_builder import splits
from microemo_jax.models.answer_words import answer_words_weight
from microemo_jax.params import export_params, load_params, write_inference_files
from microemo_jax.runs.workdir import TrainError, check_tokenizers, resolve_data_dir, resolve_face_encoder, workdir_lock
from microemo_jax.sharding import make_mesh, split_batch
from microemo_jax.training import distributed
from microemo_jax.training.checkpointing import Checkpointer, saved_steps
from microemo_jax.training.flops import human, peak_flops_per_device, train_step_flops
from microemo_jax.training.logger import MetricsLogger
from microemo_jax.training.preemption import PreemptionGuard
from microemo_jax.training.state import abstract_train_state, init_train_state, model_params, shardings_of
from microemo_jax.training.step import batch_shards, device_batch, make_eval_step, make_train_step, validation_loss

FACE_VIT = 'face_vit/'   # the separate face ViT's parameter names (MicroEmo.face_vit)


def run(cfg, workdir: str) -> dict:
    """Train per ``cfg`` in ``workdir`` (holding its lock); returns the last logged metrics."""
    workdir = os.path.abspath(os.path.expanduser(workdir))
    with workdir_lock(workdir):
        return _run(cfg, workdir)


def _run(cfg, workdir: str) -> dict:
    os.makedirs(workdir, exist_ok=True)
    rules = cfg.sharding_rules
    mesh = make_mesh(cfg.mesh)
    split_batch(cfg.data.batch_size, processes=jax.process_count(), shards=batch_shards(mesh, rules),
                accum_steps=cfg.optim.grad_accum_steps, mesh=mesh)  # here, not deep inside the first compile
    data_dir = resolve_data_dir(cfg)
    train_source = pipeline.open_split(data_dir, 'train')
    tokenizers = check_tokenizers(cfg, workdir, data_dir, resuming=bool(saved_steps(workdir)))
    # every record must come from the LLM tokenizer the dataset's report names
    train_iter = pipeline.make_iterator(train_source, cfg, train=True, tokenizer=tokenizers['llm'])
    val_source = pipeline.open_split(data_dir, 'validation') if 'validation' in splits(data_dir) else None
    abstract = abstract_train_state(cfg, mesh)
    # init.params is checked against the model (names, shapes) before anything compiles
    wanted = model_params(abstract)
    start = load_params(cfg.init.params, wanted) if cfg.init.params else None
    start = _with_face_encoder(cfg, wanted, start)
    graphdef, state, frozen = init_train_state(cfg, mesh, abstract=abstract, restored=start)
    # The checkpoint manager's first collective sets up the cross-process context with a 30 s deadline:
    # processes whose init compiled (or hit the compile cache) minutes apart meet here first.
    distributed.barrier('microemo: train state initialised')
    ckpt = Checkpointer.from_config(workdir, cfg)
    restored, resumed_at, _ = ckpt.restore_latest(abstract.state, train_iter, report=lambda line: print(line, flush=True))
    if restored is not None:
        state = restored
        print(f'resumed from {ckpt.directory} at step {int(jax.device_get(state.step))}', flush=True)
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
        f.write(cfg.to_json_best_effort(indent=2))

    state_sh, frozen_sh = shardings_of(abstract.state), shardings_of(abstract.frozen)
    step_fn = make_train_step(graphdef, cfg, mesh, state_sh, frozen_sh)
    eval_fn = make_eval_step(graphdef, cfg, mesh, state_sh, frozen_sh) if val_source is not None else None
    step = int(jax.device_get(state.step))
    stop_at = min(cfg.total_steps, step + cfg.train.max_steps_per_run) if cfg.train.max_steps_per_run else None
    batch = next(train_iter)
    t0 = time.time()
    first = device_batch(batch, mesh, rules)
    traced = step_fn.trace(state, frozen, first)  # traced once: FLOPs and compile
    compiled = traced.lower().compile()
    print(f'compiled the train step in {time.time() - t0:.1f}s', flush=True)
    distributed.barrier('microemo: train step compiled')  # processes that compiled for longer catch up
    # XLA's cost analysis counts a scanned layer once; the jaxpr count sees every layer (whole-step total).
    # Model FLOPs (MFU) leave out remat's recomputation, hardware FLOPs (HFU) include it.
    flops = train_step_flops(cfg, mesh, abstract, first, jaxpr=traced.jaxpr)
    print(f"FLOPs per step: {human(flops['model'])} model (forward + backward, for MFU), "
          f"{human(flops['hardware'])} hardware (remat recomputation included, for HFU)", flush=True)
    logger = MetricsLogger(workdir, cfg.total_steps, log_every=cfg.log_every, model_flops_per_step=flops['model'],
                           hardware_flops_per_step=flops['hardware'], peak_flops_per_device=peak_flops_per_device(),
                           resume_step=step,  # metrics.jsonl is cut back to the restored step: one curve
                           averaged=('answer_words',) if answer_words_weight(cfg.model) else ())
    last, pending = {}, None  # ``pending``: (step, metrics, names) whose finiteness is checked one step late
    with PreemptionGuard() as guard:
        while step < cfg.total_steps:
            names = batch['names']
            state, metrics = compiled(state, frozen, device_batch(batch, mesh, rules))
            step += 1
            if pending is not None:
                _check_finite(*pending, ckpt, resumed_at)
            pending = (step, metrics, names)
            last = logger.log(step, metrics) or last
            # the one place that decides to save: the interval, the last step, a stop (signal or max_steps_per_run)
            stop = (guard.should_stop(step) or step == stop_at) and step < cfg.total_steps
            if stop or ckpt.due(step) or step == cfg.total_steps:
                _check_finite(*pending, ckpt, resumed_at)
                ckpt.save(step, state, train_iter, force=True, finite=metrics['finite'])
            if eval_fn is not None and cfg.train.validate_every and step % cfg.train.validate_every == 0:
                val = validation_loss(eval_fn, state, frozen, itertools.islice(pipeline.make_iterator(
                    val_source, cfg, train=False, num_workers=0, tokenizer=tokenizers['llm']), cfg.train.validation_batches),
                    mesh, rules)
                logger.log_eval(step, val)
                last = {**last, **val}
            if stop:
                ckpt.wait()
                why = 'train.max_steps_per_run' if step == stop_at else 'a stop signal'
                print(f'stopping at step {step} ({why}); a checkpoint was saved, re-run to resume', flush=True)
                logger.close()
                return last
            if step < cfg.total_steps:
                batch = next(train_iter)
    _check_finite(*pending, ckpt, resumed_at) if pending else None
    ckpt.wait()
    logger.close()
    export_params(os.path.join(workdir, 'params'), cfg, graphdef, state, frozen, stamp=False)  # stamped below
    if jax.process_index() == 0:  # config, tokenizers, provenance: what evaluate/predict/serve need besides weights
        write_inference_files(os.path.join(workdir, 'params'), cfg, data_dir, expected=tokenizers,
                              extra={'steps': step, 'last_metrics': {k: float(v) for k, v in last.items()
                                                                     if isinstance(v, (int, float))}})
    ckpt.close()
    print(f'finished {step} steps; parameters exported to {os.path.join(workdir, "params")}', flush=True)
    return last


def _with_face_encoder(cfg, wanted: dict, start: dict | None) -> dict | None:
    """``start`` plus the face ViT of ``init.face_encoder`` where ``init.params`` does not hold it."""
    source = cfg.init.get('face_encoder', '')
    face = {name: v for name, v in wanted.items() if name.startswith(FACE_VIT)}
    if not source or (start and all(name in start for name in face)):
        return start
    if not face:
        print(f"init.face_encoder={source!r}: this model has no separate face ViT (micro_expression.enabled="
              f"{cfg.model.micro_expression.enabled}, face_encoder={cfg.model.micro_expression.face_encoder!r}); "
              f"not loaded", flush=True)
        return start
    path = resolve_face_encoder(cfg)
    loaded = load_params(path, face)
    print(f'face encoder: {len(loaded)} parameters from {path}', flush=True)
    return {**loaded, **(start or {})}


def _check_finite(step, metrics, names, ckpt, resumed_at=None) -> None:
    if bool(jax.device_get(metrics['finite'])):
        return
    ckpt.wait()
    kept = ckpt.latest_step()
    clips = ', '.join(str(n) for n in names if n) or '(padding only)'
    # the first step after a resume may fail because of the checkpoint, not the batch (one written before
    # checksums were kept cannot be verified): say so, instead of sending every re-run into the same loop
    suspect = (f" This is the first step after resuming from the checkpoint of step {resumed_at}: if these clips "
               f"trained before, that checkpoint may be damaged; move {ckpt.directory}/{resumed_at} aside to resume "
               f"from an older one." if resumed_at is not None and step == resumed_at + 1 else '')
    raise TrainError(f"non-finite loss or gradient at step {step} (loss {float(jax.device_get(metrics['loss']))}) "
                     f"on the batch of clips: {clips}. The update was not applied; the last good checkpoint "
                     f"({'step ' + str(kept) if kept is not None else 'none yet'}) is kept.{suspect}")
