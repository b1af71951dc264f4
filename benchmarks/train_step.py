r"""Train-step time, tokens/s, MFU and HFU of a config on the devices at hand (random init, synthetic batches).

    python benchmarks/train_step.py --config configs/emer.py:paper --mesh fsdp=1 --batch 1 --steps 5
    python benchmarks/train_step.py --config configs/emer.py:demo --batch 4
    python benchmarks/train_step.py --config configs/emer.py:paper --mesh fsdp=1 --batch 1 --count-only

Builds the sharded train state (fresh init), compiles the step ahead of time (reports compile time and
XLA's per-device memory), runs ``--warmup`` untimed and ``--steps`` timed steps on one repeated synthetic
batch, and prints one JSON line: step time, attended tokens/s, FLOPs per step and the two utilisations
against the device's bf16 peak (``microemo_jax/training/flops.py``; null on CPU):

* ``mfu``: model FLOPs (forward + the backward the trained parameters need, no recomputation);
* ``hfu``: hardware FLOPs (what runs: remat's recomputed forward included). Equal without remat.

``--f32-peak`` also measures the float32 matmul peak of the first device in the same run (fastest of a few
jitted square matmuls) and reports ``mfu_f32`` / ``hfu_f32`` against it: the honest denominator on a CPU or
for a float32 config. ``--profile DIR`` records the timed steps with ``jax.profiler`` into DIR and reports
``host_round_trips``: host callbacks, infeed/outfeed and send/recv in the compiled step (0: the step never
waits on the host) and the XLA executions per step seen in the trace (1: one program, nothing in between).

``--count-only`` traces the step against abstract parameters (nothing is allocated or compiled) and prints
the two FLOP counts only: how a figure measured elsewhere is restated on a machine without that device.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import floors  # benchmarks/floors.py: the in-run float32 matmul peak


def main(argv=None) -> int:
    # Multi-device CPU runs (fake devices on few cores) can deadlock in collectives with XLA CPU's
    # concurrency-optimised scheduler (seen: demo config, 2x2 mesh, 2 cores); this CPU-only flag avoids it.
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                               ' --xla_cpu_enable_concurrency_optimized_scheduler=false').strip()
    from microemo_jax.config import config_from_argv
    cfg, rest = config_from_argv(list(sys.argv[1:] if argv is None else argv))
    parser = argparse.ArgumentParser(prog='benchmarks/train_step.py')
    parser.add_argument('--mesh', default=None, help="e.g. fsdp=8 (default: the config's mesh on all devices)")
    parser.add_argument('--batch', type=int, default=None, help="global batch (default: data.batch_size)")
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--count-only', action='store_true', help='only count FLOPs (abstract: no init, no compile)')
    parser.add_argument('--f32-peak', action='store_true',
                        help='measure the float32 matmul peak; report mfu_f32/hfu_f32')
    parser.add_argument('--profile', default=None, help='jax.profiler trace of the timed steps into this folder')
    args = parser.parse_args(rest)

    from microemo_jax.training.distributed import maybe_initialize
    maybe_initialize()
    import jax

    from microemo_jax.batch import synthetic_batch
    from microemo_jax.cli_checks import mesh_spec
    from microemo_jax.runs.plan import memory
    from microemo_jax.sharding import make_mesh
    from microemo_jax.training import state as state_lib, step as step_lib
    from microemo_jax.training.flops import estimate_mfu, peak_flops_per_device, train_step_flops

    sizes = mesh_spec(args.mesh) if args.mesh else dict(cfg.mesh)
    mesh = make_mesh(sizes)
    batch_size = args.batch or cfg.data.batch_size
    if args.count_only:
        abstract = state_lib.abstract_train_state(cfg, mesh)
        host = synthetic_batch(cfg.model, batch_size, cfg.data.max_seq_len, mel_frames=cfg.data.max_mel_frames)
        batch = step_lib.device_batch(host, mesh, cfg.sharding_rules)
        t = time.perf_counter()
        flops = train_step_flops(cfg, mesh, abstract, batch)
        print(json.dumps(dict(config=cfg.get('variant'), stage=cfg.stage, mesh=dict(mesh.shape), global_batch=batch_size,
                              seq_len=cfg.data.max_seq_len, remat=cfg.model.remat_policy,
                              model_flops_per_step=flops['model'], hardware_flops_per_step=flops['hardware'],
                              hardware_over_model=flops['hardware'] / flops['model'],
                              count_s=round(time.perf_counter() - t, 1))))
        return 0
    t = time.perf_counter()
    abstract = state_lib.abstract_train_state(cfg, mesh)
    graphdef, state, frozen = state_lib.init_train_state(cfg, mesh, abstract=abstract)
    jax.block_until_ready(state)
    init_s = time.perf_counter() - t
    step = step_lib.make_train_step(graphdef, cfg, mesh, state_lib.shardings_of(abstract.state),
                                    state_lib.shardings_of(abstract.frozen))
    host = synthetic_batch(cfg.model, batch_size, cfg.data.max_seq_len, mel_frames=cfg.data.max_mel_frames)
    batch = step_lib.device_batch(host, mesh, cfg.sharding_rules)
    t = time.perf_counter()
    traced = step.trace(state, frozen, batch)
    compiled = traced.lower().compile()
    compile_s = time.perf_counter() - t
    flops = train_step_flops(cfg, mesh, abstract, batch, jaxpr=traced.jaxpr)
    for _ in range(args.warmup):
        state, metrics = compiled(state, frozen, batch)
    jax.block_until_ready(metrics)
    if args.profile:
        jax.profiler.start_trace(args.profile)
    t = time.perf_counter()
    for _ in range(args.steps):
        state, metrics = compiled(state, frozen, batch)
    jax.block_until_ready((state, metrics))
    step_s = (time.perf_counter() - t) / args.steps
    if args.profile:
        jax.profiler.stop_trace()
    n = mesh.devices.size
    peak = peak_flops_per_device(mesh.devices.flat[0])
    mfu = estimate_mfu(flops['model'], step_s, n, peak)
    hfu = estimate_mfu(flops['hardware'], step_s, n, peak)
    result = dict(config=cfg.get('variant'), stage=cfg.stage, mesh=dict(mesh.shape), devices=n,
                  device_kind=mesh.devices.flat[0].device_kind, global_batch=batch_size,
                  seq_len=cfg.data.max_seq_len, dtype=cfg.model.dtype, remat=cfg.model.remat_policy,
                  init_s=round(init_s, 2), compile_s=round(compile_s, 2), step_s=step_s,
                  tokens_per_s=float(host['attention_mask'].sum()) / step_s,
                  model_flops_per_step=flops['model'], hardware_flops_per_step=flops['hardware'],
                  model_tflops_per_s_per_device=flops['model'] / step_s / n / 1e12,
                  hardware_tflops_per_s_per_device=flops['hardware'] / step_s / n / 1e12,
                  peak_tflops_per_device=peak / 1e12 if peak else None, mfu=mfu, hfu=hfu,
                  memory_gib={k: round(v / 2 ** 30, 3) for k, v in memory(compiled).items()},
                  loss=float(metrics['loss']), finite=bool(metrics['finite']),
                  samples_per_s=batch_size / step_s)
    if args.f32_peak:
        f32_peak = floors.f32_matmul_peak(mesh.devices.flat[0])
        result.update(f32_peak_tflops_per_device=f32_peak / 1e12,
                      mfu_f32=estimate_mfu(flops['model'], step_s, n, f32_peak),
                      hfu_f32=estimate_mfu(flops['hardware'], step_s, n, f32_peak))
    if args.profile:
        result.update(profile=args.profile, **host_round_trips(compiled.as_text(), args.profile, args.steps))
    print(json.dumps(result))
    return 0 if math.isfinite(result['loss']) else 1


def host_round_trips(hlo: str, trace_dir: str, steps: int) -> dict:
    """Host interactions compiled into the step, and XLA program executions per step in the trace."""
    import glob
    import re
    ops = re.findall(r'(xla_python_\w*callback|xla_ffi_python_\w*callback|outfeed|infeed|\bsend\(|\brecv\()', hlo)
    executions = None
    try:
        from jax._src.lib import _profile_data
        files = sorted(glob.glob(os.path.join(trace_dir, '**', '*.xplane.pb'), recursive=True), key=os.path.getmtime)
        names = [ev.name for plane in _profile_data.ProfileData.from_file(files[-1]).planes for line in plane.lines
                 for ev in line.events]
        executions = sum(1 for x in names if x.startswith('ThunkExecutor::Execute (wait') or
                         re.match(r'^(PjRt|Pjrt)\w*Execute', x) or x.startswith('TfrtCpuExecutable::Execute')) / steps
    except Exception as e:  # the trace is still written; only the count is missing
        print(f"could not read the trace back: {e}", file=sys.stderr)
    return dict(host_round_trips=len(ops), host_ops=sorted(set(ops)), executions_per_step=executions)


if __name__ == '__main__':
    sys.exit(main())
