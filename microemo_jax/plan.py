r"""Plan memory and FLOPs of a training run ahead of time: compile its train step for a target mesh.

    python -m microemo_jax.plan --config configs/emer.py:paper --mesh fsdp=8 --memory-gib 80
    python -m microemo_jax.plan --config configs/emer.py:paper --mesh data=2,fsdp=4 --batch 16 --config.stage=2

Nothing is allocated: the train state and the batch are abstract (shapes, dtypes, shardings) and the
step is compiled with ``jax.jit(...).lower(...).compile()``. When the machine has fewer devices of its
default kind than the mesh needs, the mesh is made of fake CPU devices (``JAX_NUM_CPU_DEVICES``, set here
before JAX starts). Memory figures then come from the CPU compiler, whose buffer assignment and
fusion differ from GPU/TPU (e.g. bf16 math may be widened): read them as estimates.

Reported per device: arguments (state, frozen weights, batch), outputs, aliased (donated) bytes, temps
(activations, gradients, workspace), generated code, and the total. FLOPs: the jaxpr count of one step
(global, scan-aware; ``training/flops.py``) and XLA's own figure (per device; while-loop bodies counted
once). The largest per-device batch that fits ``--memory-gib`` is found by ``--search``:
``extrapolate`` (default) compiles at two batch sizes and fits memory = fixed + slope * batch;
``binary`` compiles until it brackets the limit (slower, exact for this compiler); ``none`` skips.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

GiB = 2 ** 30


def parse_mesh(text: str) -> dict[str, int]:
    sizes = {}
    for part in text.split(','):
        name, sep, value = part.partition('=')
        if not sep:
            raise ValueError(f"--mesh {text!r}: write AXIS=SIZE[,AXIS=SIZE], e.g. fsdp=8 or data=2,fsdp=4")
        sizes[name.strip()] = int(value)
    if any(v < 1 for v in sizes.values()):
        raise ValueError(f"--mesh {text!r}: sizes must be >= 1 (no -1 here: the mesh defines the device count)")
    return sizes


def _prepare_devices(n: int) -> None:
    """Ask for ``n`` CPU devices before JAX starts (used when the default backend has fewer than ``n``)."""
    if 'jax' in sys.modules:
        from jax._src import xla_bridge
        if xla_bridge.backends_are_initialized():
            return  # too late to change; _devices() checks the count
    if int(os.environ.get('JAX_NUM_CPU_DEVICES', '0') or 0) < n:
        os.environ['JAX_NUM_CPU_DEVICES'] = str(n)


def _devices(n: int):
    import jax
    devices = jax.devices()
    if len(devices) < n:
        if jax.default_backend() != 'cpu':
            devices = jax.devices('cpu')
        if len(devices) < n:
            raise RuntimeError(f"the mesh needs {n} devices but JAX already started with {len(devices)}; run plan "
                               f"in a fresh process (it sets JAX_NUM_CPU_DEVICES={n} itself)")
    return devices[:n]


def memory(compiled) -> dict[str, float]:
    """Per-device bytes of a compiled executable (XLA's memory analysis)."""
    m = compiled.memory_analysis()
    out = dict(arguments=m.argument_size_in_bytes, outputs=m.output_size_in_bytes, aliased=m.alias_size_in_bytes,
               temps=m.temp_size_in_bytes, generated_code=m.generated_code_size_in_bytes)
    out['total'] = out['arguments'] + out['outputs'] - out['aliased'] + out['temps'] + out['generated_code']
    return out


class Planner:
    """Compiles the train step of ``cfg`` on ``mesh`` for any global batch size (abstract state built once)."""

    def __init__(self, cfg, mesh):
        import jax
        from microemo_jax.training import state as state_lib, step as step_lib
        self.cfg, self.mesh = cfg, mesh
        t = time.perf_counter()
        self.abstract = state_lib.abstract_train_state(cfg, mesh)
        self.abstract_s = time.perf_counter() - t
        self.step = step_lib.make_train_step(self.abstract.graphdef, cfg, mesh,
                                             state_lib.shardings_of(self.abstract.state),
                                             state_lib.shardings_of(self.abstract.frozen))
        self.shards = step_lib.batch_shards(mesh, cfg.sharding_rules)
        self.batch_sharding = step_lib.batch_input_sharding(mesh, cfg.sharding_rules)
        self.unit = self.shards * cfg.optim.grad_accum_steps  # global batch sizes must be multiples of this
        self._jax = jax
        self.results: dict[int, dict] = {}

    def batch(self, global_batch: int):
        from microemo_jax.batch import batch_spec
        spec = batch_spec(self.cfg.model, global_batch, self.cfg.data.max_seq_len,
                          mel_frames=self.cfg.data.max_mel_frames)
        return {k: self._jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=self.batch_sharding) for k, v in spec.items()}

    def compile(self, global_batch: int, *, flops: bool = False) -> dict:
        from microemo_jax.sharding import split_batch
        split_batch(global_batch, shards=self.shards, accum_steps=self.cfg.optim.grad_accum_steps, mesh=self.mesh,
                    what='--batch')
        if global_batch in self.results and not (flops and 'flops' not in self.results[global_batch]):
            return self.results[global_batch]
        from microemo_jax.training.flops import count_flops, flops_per_step
        batch = self.batch(global_batch)
        print(f"plan: compiling the train step for global batch {global_batch} on {self.mesh.devices.size} "
              f"{self.mesh.devices.flat[0].platform} devices...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        lowered = self.step.lower(self.abstract.state, self.abstract.frozen, batch)
        t_lower = time.perf_counter() - t
        compiled = lowered.compile()
        result = dict(global_batch=global_batch, per_device_batch=global_batch / self.shards,
                      lower_s=t_lower, compile_s=time.perf_counter() - t - t_lower, memory=memory(compiled))
        if flops:
            result['xla_flops_per_device'] = flops_per_step(compiled)
            result['flops'] = count_flops(self.step, self.abstract.state, self.abstract.frozen, batch)
        self.results[global_batch] = result
        return result

    def fits(self, global_batch: int, budget: float) -> bool:
        return self.compile(global_batch)['memory']['total'] <= budget

    def extrapolate(self, budget: float, first: int) -> dict:
        """Two compiles (``first`` and twice it); memory = fixed + slope * batch; largest batch under budget."""
        a, b = first, 2 * first
        ma, mb = self.compile(a)['memory']['total'], self.compile(b)['memory']['total']
        slope = (mb - ma) / (b - a)
        fixed = ma - slope * a
        if slope <= 0:
            best = None
        else:
            best = int((budget - fixed) // slope) // self.unit * self.unit
        return dict(method=f"linear extrapolation from compiles at global batch {a} and {b}",
                    fixed_bytes=fixed, bytes_per_example=slope,
                    max_global_batch=best if best and best > 0 else 0,
                    max_per_device_batch=(best / self.shards) if best and best > 0 else 0)

    def binary(self, budget: float, first: int, limit: int = 1 << 14) -> dict:
        """Doubling then bisection over global batch (multiples of the unit), compiling each candidate."""
        lo, hi = 0, None
        b = first
        while b <= limit:
            if self.fits(b, budget):
                lo, b = b, b * 2
            else:
                hi = b
                break
        if hi is not None:
            while hi - lo > self.unit:
                mid = (lo + hi) // 2 // self.unit * self.unit
                if mid <= lo:
                    break
                if self.fits(mid, budget):
                    lo = mid
                else:
                    hi = mid
        return dict(method=f"binary search by compiling ({len(self.results)} compiles)",
                    max_global_batch=lo, max_per_device_batch=lo / self.shards)


def _gib(x: float) -> str:
    return f"{x / GiB:8.3f} GiB"


def report(cfg, mesh, planner: Planner, main: dict, search: dict | None, budget_gib: float | None, out=None) -> None:
    from microemo_jax.training.flops import human
    from microemo_jax.training.state import count_params
    out = out or sys.stdout
    p = lambda *a: print(*a, file=out)  # noqa: E731
    a = planner.abstract
    p(f"plan: {cfg.get('variant', '?')} config, stage {cfg.stage}, mesh {dict(mesh.shape)} "
      f"({mesh.devices.size} x {mesh.devices.flat[0].device_kind}), model.dtype {cfg.model.dtype}, "
      f"remat {cfg.model.remat_policy}, scan {cfg.model.scan_layers}")
    p(f"  parameters: {count_params(a.state.params) / 1e6:.1f} M trainable, {count_params(a.frozen) / 1e6:.1f} M frozen")
    p(f"  global batch {main['global_batch']} ({main['per_device_batch']:g} per device, "
      f"{cfg.optim.grad_accum_steps} micro-batches), seq {cfg.data.max_seq_len}, {cfg.model.num_frames} frames")
    p(f"  compile: lower {main['lower_s']:.1f} s, XLA {main['compile_s']:.1f} s")
    p("  memory per device:")
    for key in ('arguments', 'outputs', 'aliased', 'temps', 'generated_code', 'total'):
        p(f"    {key:15s}{_gib(main['memory'][key])}")
    p(f"  FLOPs per step: {human(main.get('flops'))} (jaxpr matmul count, all devices, backward and remat included); "
      f"XLA cost analysis {human(main.get('xla_flops_per_device'))} per device (loop bodies counted once)")
    if search:
        p(f"  largest batch within {budget_gib:g} GiB per device: {search['max_per_device_batch']:g} per device "
          f"(global {search['max_global_batch']}) by {search['method']}")
        if 'bytes_per_example' in search:
            p(f"    fixed {_gib(search['fixed_bytes']).strip()} + {_gib(search['bytes_per_example']).strip()} "
              f"per example of global batch")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from microemo_jax.config import ConfigError, config_from_argv
    try:
        cfg, rest = config_from_argv(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog='python -m microemo_jax.plan', description=__doc__.split('\n')[0])
    parser.add_argument('--mesh', required=True, help="target mesh, e.g. fsdp=8 or data=2,fsdp=4")
    parser.add_argument('--batch', type=int, default=None, help="global batch (default: data.batch_size)")
    parser.add_argument('--memory-gib', type=float, default=None,
                        help="per-device memory budget for the batch search (default: none, no search)")
    parser.add_argument('--search', choices=('extrapolate', 'binary', 'none'), default='extrapolate')
    parser.add_argument('--json', default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(rest)
    sizes = parse_mesh(args.mesh)
    n = math.prod(sizes.values())
    _prepare_devices(n)

    from microemo_jax.sharding import make_mesh
    mesh = make_mesh({**{'data': 1, 'fsdp': 1, 'tensor': 1}, **sizes}, _devices(n))
    planner = Planner(cfg, mesh)
    batch = args.batch or cfg.data.batch_size
    main_result = planner.compile(batch, flops=True)
    search = None
    if args.memory_gib and args.search != 'none':
        budget = args.memory_gib * GiB
        search = (planner.extrapolate(budget, planner.unit) if args.search == 'extrapolate'
                  else planner.binary(budget, planner.unit))
    report(cfg, mesh, planner, main_result, search, args.memory_gib)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(mesh=sizes, main=main_result, search=search, compiles=list(planner.results.values())),
                      f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
