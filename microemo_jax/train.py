"""Train MicroEmo: sharded two-stage instruction tuning with preemption-safe, resumable checkpoints.

    python -m microemo_jax.train --config configs/emer.py[:VARIANT] --workdir DIR [--config.KEY=VALUE ...]

Stage 1 (``--config.stage=1``) trains the Q-Formers, the micro-expression branch, the global-local
attention and the projections with the LLM frozen; stage 2 adds LoRA on the LLM and usually starts
from stage 1's exported parameters (``--config.init.params=STAGE1_DIR/params``).

The run resumes by itself from DIR/checkpoints (same data order, same random numbers), saves on
SIGTERM or a preemption notice, logs to stdout, DIR/metrics.jsonl and DIR/tensorboard, and at the end
writes DIR/params (the whole model, for the next stage, ``evaluate`` and ``predict``).
``configs/emer.py:demo`` needs nothing else: the demo corpus is generated and prepared on first use.
"""
from __future__ import annotations

import argparse
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
    from microemo_jax.demo_data import demo_paths, ensure_demo_data
    if jax.process_index() == 0:
        path = ensure_demo_data(cfg)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices('demo data prepared')
    return demo_paths(cfg)[1] if jax.process_index() else path


def check_batch(cfg, mesh) -> None:
    """Errors that would otherwise surface deep inside the first compile."""
    import jax
    from microemo_jax.training.step import batch_shards
    b, shards, procs = cfg.data.batch_size, batch_shards(mesh, cfg.sharding_rules), jax.process_count()
    accum = cfg.optim.grad_accum_steps
    if b % shards:
        raise TrainError(f"data.batch_size={b} does not divide over the {shards} devices of the mesh's batch axes "
                         f"(mesh {dict(mesh.shape)}); use a multiple of {shards}")
    if b % procs:
        raise TrainError(f"data.batch_size={b} does not divide over the {procs} processes")
    if b % (accum * shards):
        raise TrainError(f"data.batch_size={b} does not split into optim.grad_accum_steps={accum} micro-batches "
                         f"of a multiple of {shards} (the mesh's batch axes)")


def run(cfg, workdir: str) -> dict:
    """Train per ``cfg`` in ``workdir``; returns the last logged metrics."""
    import jax
    from microemo_jax.data import pipeline
    from microemo_jax.sharding import make_mesh
    from microemo_jax.training.checkpointing import Checkpointer, PreemptionGuard
    from microemo_jax.training.flops import jaxpr_flops, peak_flops_per_device
    from microemo_jax.training.logger import MetricsLogger
    from microemo_jax.training.state import abstract_train_state, export_params, init_train_state, shardings_of
    from microemo_jax.training.step import device_batch, make_eval_step, make_train_step, validation_loss

    workdir = os.path.abspath(os.path.expanduser(workdir))
    os.makedirs(workdir, exist_ok=True)
    rules = cfg.sharding_rules
    mesh = make_mesh(cfg.mesh)
    check_batch(cfg, mesh)
    data_dir = resolve_data_dir(cfg)
    train_source = pipeline.open_split(data_dir, 'train')
    train_iter = pipeline.make_iterator(train_source, cfg, train=True)
    from microemo_jax.data.tfds_builder import splits
    val_source = pipeline.open_split(data_dir, 'validation') if 'validation' in splits(data_dir) else None

    abstract = abstract_train_state(cfg, mesh)
    graphdef, state, frozen = init_train_state(cfg, mesh, abstract=abstract)  # validates init.params first
    ckpt = Checkpointer.from_config(workdir, cfg)
    if ckpt.latest_step() is not None:
        state = ckpt.restore(None, abstract.state, train_iter)
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
    traced = step_fn.trace(state, frozen, device_batch(batch, mesh, rules))  # traced once: FLOPs and compile
    compiled = traced.lower().compile()
    print(f'compiled the train step in {time.time() - t0:.1f}s', flush=True)
    distributed.barrier('microemo: train step compiled')  # processes that compiled for longer catch up
    # XLA's cost analysis counts a scanned layer once; the jaxpr count sees every layer (whole-step total).
    flops = jaxpr_flops(traced.jaxpr)
    logger = MetricsLogger(workdir, cfg.total_steps, log_every=cfg.log_every, flops_per_step=flops,
                           peak_flops_per_device=peak_flops_per_device())
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
            if step % cfg.checkpoint_every == 0 or step == cfg.total_steps:
                _check_finite(*pending, ckpt)
                ckpt.save(step, state, train_iter, force=True, finite=metrics['finite'])
            if eval_fn is not None and cfg.train.validate_every and step % cfg.train.validate_every == 0:
                val = validation_loss(eval_fn, state, frozen, _take(pipeline.make_iterator(
                    val_source, cfg, train=False, num_workers=0), cfg.train.validation_batches), mesh, rules)
                logger.log_eval(step, val)
                last = {**last, **val}
            if (guard.should_stop(step) or step == stop_at) and step < cfg.total_steps:
                _check_finite(*pending, ckpt)
                ckpt.save(step, state, train_iter, force=True, finite=metrics['finite'])
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
    ckpt.close()
    print(f'finished {step} steps; parameters exported to {os.path.join(workdir, "params")}', flush=True)
    return last


def _take(iterator, n):
    for i, batch in enumerate(iterator):
        if i >= n:
            break
        yield batch


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
    from microemo_jax.hf.checkpoint import CheckpointError
    from microemo_jax.sharding import ShardingError
    try:
        last = run(cfg, args.workdir)
    except (TrainError, ConfigError, ShardingError, CheckpointError, FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    print(json.dumps({k: float(v) for k, v in last.items() if isinstance(v, (int, float))}), flush=True)


if __name__ == '__main__':
    main()
