"""Train MicroEmo: sharded two-stage instruction tuning with preemption-safe, resumable checkpoints.

    python -m microemo_jax.train --config configs/emer.py[:VARIANT] --workdir DIR [--config.KEY=VALUE ...]

Stage 1 (``--config.stage=1``) trains the Q-Formers, the micro-expression branch, the global-local
attention and the projections with the LLM frozen; stage 2 adds LoRA on the LLM and usually starts
from stage 1's exported parameters (``--config.init.params=STAGE1_DIR/params``).

The run resumes by itself from DIR/checkpoints (same data order, same random numbers; a checkpoint that
cannot be read is skipped, said so and moved to DIR/checkpoints-corrupt), saves on SIGTERM or a
preemption notice, logs to stdout, DIR/metrics.jsonl and DIR/tensorboard, and at the end writes
DIR/params (the whole model, for the next stage, ``evaluate`` and ``predict``). While it runs it holds
DIR/.lock: a second run on the same DIR is refused with a message naming the first one's process.
``configs/emer.py:demo`` needs nothing else: the demo corpus is generated and prepared on first use.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
import time

from microemo_jax.training import distributed


class TrainError(RuntimeError):
    """A run cannot start or must stop; the message says why (and what was kept)."""


def parse(argv):
    from microemo_jax.config import ConfigError, config_from_argv
    parser = argparse.ArgumentParser(prog='python -m microemo_jax.train', description=__doc__.split('\n')[0])
    parser.add_argument('--workdir', required=True, help='checkpoints, logs and exported params go here')
    try:
        cfg, rest = config_from_argv(argv)
    except ConfigError as e:
        parser.error(str(e))
    return cfg, parser.parse_args(rest)


def resolve_data_dir(cfg) -> str:
    import jax
    from jax.experimental import multihost_utils
    if cfg.data.dir:
        return os.path.expanduser(cfg.data.dir)
    if cfg.variant != 'demo':
        raise TrainError("set --config.data.dir to a dataset made by `python -m microemo_jax.prepare`")
    from microemo_jax.demo.first_use import demo_paths, ensure_demo_data
    if jax.process_index() == 0:
        path = ensure_demo_data(cfg)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices('demo data prepared')
    return demo_paths(cfg)[1] if jax.process_index() else path


@contextlib.contextmanager
def workdir_lock(workdir: str):
    """Hold ``workdir/.lock`` (``lock.DirLock``) for the run; raises ``LockHeld`` naming the holder.

    With several processes (one run over hosts sharing the workdir) process 0 holds it for all of them
    and tells the others whether it got it.
    """
    import jax
    from microemo_jax.lock import DirLock, LockHeld
    lock = DirLock(workdir, 'train workdir') if jax.process_index() == 0 else None
    refused = None
    if lock is not None:
        try:
            lock.acquire()
        except LockHeld as e:
            refused = e
    verdict = distributed.share_from_first('microemo: train workdir lock', str(refused) if refused else 'ok')
    if refused is not None:
        raise refused
    if verdict != 'ok':
        raise TrainError(f"process 0 could not lock the workdir: {verdict}")
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()


def run(cfg, workdir: str) -> dict:
    """Train per ``cfg`` in ``workdir`` (holding its lock); returns the last logged metrics."""
    workdir = os.path.abspath(os.path.expanduser(workdir))
    with workdir_lock(workdir):
        return _run(cfg, workdir)


def _run(cfg, workdir: str) -> dict:
    import jax
    from microemo_jax.data import pipeline
    from microemo_jax.params import export_params, load_params, write_inference_files
    from microemo_jax.sharding import make_mesh, split_batch
    from microemo_jax.training.checkpointing import Checkpointer
    from microemo_jax.training.flops import human, peak_flops_per_device, train_step_flops
    from microemo_jax.training.logger import MetricsLogger
    from microemo_jax.training.preemption import PreemptionGuard
    from microemo_jax.training.state import abstract_train_state, init_train_state, model_params, shardings_of
    from microemo_jax.training.step import batch_shards, device_batch, make_eval_step, make_train_step, validation_loss

    os.makedirs(workdir, exist_ok=True)
    rules = cfg.sharding_rules
    mesh = make_mesh(cfg.mesh)
    split_batch(cfg.data.batch_size, processes=jax.process_count(), shards=batch_shards(mesh, rules),
                accum_steps=cfg.optim.grad_accum_steps, mesh=mesh)  # here, not deep inside the first compile
    data_dir = resolve_data_dir(cfg)
    train_source = pipeline.open_split(data_dir, 'train')
    train_iter = pipeline.make_iterator(train_source, cfg, train=True)
    from microemo_jax.data.tfds_builder import splits
    val_source = pipeline.open_split(data_dir, 'validation') if 'validation' in splits(data_dir) else None

    abstract = abstract_train_state(cfg, mesh)
    # init.params is checked against the model (names, shapes) before anything compiles
    start = load_params(cfg.init.params, model_params(abstract)) if cfg.init.params else None
    graphdef, state, frozen = init_train_state(cfg, mesh, abstract=abstract, restored=start)
    # The checkpoint manager's first collective sets up the cross-process context with a 30 s deadline:
    # processes whose init compiled (or hit the compile cache) minutes apart meet here first.
    distributed.barrier('microemo: train state initialised')
    ckpt = Checkpointer.from_config(workdir, cfg)
    restored, _, _ = ckpt.restore_latest(abstract.state, train_iter, report=lambda line: print(line, flush=True))
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
                           hardware_flops_per_step=flops['hardware'], peak_flops_per_device=peak_flops_per_device())
    last, pending = {}, None  # ``pending``: (step, metrics, names) whose finiteness is checked one step late
    with PreemptionGuard() as guard:
        while step < cfg.total_steps:
            names = batch['names']
            state, metrics = compiled(state, frozen, device_batch(batch, mesh, rules))
            step += 1
            if pending is not None:
                _check_finite(*pending, ckpt)
            pending = (step, metrics, names)
            last = logger.log(step, metrics) or last
            # the one place that decides to save: the interval, the last step, a stop (signal or max_steps_per_run)
            stop = (guard.should_stop(step) or step == stop_at) and step < cfg.total_steps
            if stop or ckpt.due(step) or step == cfg.total_steps:
                _check_finite(*pending, ckpt)
                ckpt.save(step, state, train_iter, force=True, finite=metrics['finite'])
            if eval_fn is not None and cfg.train.validate_every and step % cfg.train.validate_every == 0:
                val = validation_loss(eval_fn, state, frozen, itertools.islice(pipeline.make_iterator(
                    val_source, cfg, train=False, num_workers=0), cfg.train.validation_batches), mesh, rules)
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
    _check_finite(*pending, ckpt) if pending else None
    ckpt.wait()
    logger.close()
    export_params(os.path.join(workdir, 'params'), cfg, graphdef, state, frozen)
    if jax.process_index() == 0:  # config, tokenizers, provenance: what evaluate/predict/serve need besides weights
        write_inference_files(os.path.join(workdir, 'params'), cfg, data_dir,
                              extra={'steps': step, 'last_metrics': {k: float(v) for k, v in last.items()
                                                                     if isinstance(v, (int, float))}})
    ckpt.close()
    print(f'finished {step} steps; parameters exported to {os.path.join(workdir, "params")}', flush=True)
    return last


def _check_finite(step, metrics, names, ckpt) -> None:
    import jax
    if bool(jax.device_get(metrics['finite'])):
        return
    ckpt.wait()
    kept = ckpt.latest_step()
    clips = ', '.join(str(n) for n in names if n) or '(padding only)'
    raise TrainError(f"non-finite loss or gradient at step {step} (loss {float(jax.device_get(metrics['loss']))}) "
                     f"on the batch of clips: {clips}. The update was not applied; the last good checkpoint "
                     f"({'step ' + str(kept) if kept is not None else 'none yet'}) is kept.")


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    distributed.maybe_initialize()  # before anything else touches JAX
    import jax
    if not os.environ.get('JAX_COMPILATION_CACHE_DIR'):  # re-runs and resumes skip most of the compile
        jax.config.update('jax_compilation_cache_dir', os.path.expanduser('~/.cache/microemo-jax/jax-compile'))
        jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
    import absl.flags
    absl.flags.FLAGS.mark_as_parsed()  # Grain's worker processes read absl flags
    cfg, args = parse(argv)
    from microemo_jax.config import ConfigError
    from microemo_jax.hf.safetensors_io import CheckpointError
    from microemo_jax.lock import LockHeld
    from microemo_jax.sharding import ShardingError
    from microemo_jax.training.checkpointing import CheckpointUnreadable
    try:
        last = run(cfg, args.workdir)
    except (TrainError, ConfigError, ShardingError, CheckpointError, CheckpointUnreadable, LockHeld,
            FileNotFoundError, NotADirectoryError, PermissionError, ValueError) as e:
        sys.exit(f'error: {e}')
    print(json.dumps({k: float(v) for k, v in last.items() if isinstance(v, (int, float))}), flush=True)


if __name__ == '__main__':
    main()
