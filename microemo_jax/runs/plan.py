"""Planning a training run ahead of time: the train step compiled for a target mesh against abstract shapes,
its memory per device, its FLOPs, and the largest batch that fits (``python -m microemo_jax.plan`` is the
command line, and says how to read the figures)."""
from __future__ import annotations

import sys
import time

import jax

from microemo_jax.batch import batch_spec
from microemo_jax.sharding import split_batch
from microemo_jax.training import state as state_lib, step as step_lib
from microemo_jax.training.flops import count_flops, flops_per_step, human
from microemo_jax.training.state import count_params

GiB = 2 ** 30


def devices(n: int):
    """The first ``n`` devices of the default backend, else of the CPU (fake devices asked for before start-up)."""
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
        self.results: dict[int, dict] = {}

    def batch(self, global_batch: int):
        spec = batch_spec(self.cfg.model, global_batch, self.cfg.data.max_seq_len,
                          mel_frames=self.cfg.data.max_mel_frames)
        return {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=self.batch_sharding) for k, v in spec.items()}

    def compile(self, global_batch: int, *, flops: bool = False) -> dict:
        split_batch(global_batch, shards=self.shards, accum_steps=self.cfg.optim.grad_accum_steps, mesh=self.mesh,
                    what='--batch')
        if global_batch in self.results and not (flops and 'flops' not in self.results[global_batch]):
            return self.results[global_batch]
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
    out = out or sys.stdout
    p = lambda *a: print(*a, file=out)  # noqa: E731
    a = planner.abstract
    p(f"plan: {cfg.get('variant', '?')} config, stage {cfg.stage}, mesh {dict(mesh.shape)} "
      f"({mesh.devices.size} x {mesh.devices.flat[0].device_kind}), model.dtype {cfg.model.dtype}, "
      f"remat {cfg.model.remat_policy}, scan {cfg.model.scan_layers}")
    p(f"  parameters: {count_params(a.state.params) / 1e6:.1f} M trainable, "
      f"{count_params(a.frozen) / 1e6:.1f} M frozen")
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
