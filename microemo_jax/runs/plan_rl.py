"""Planning a stage-3 (GRPO) run ahead of time: its three programs compiled for a target mesh against abstract
shapes, and the memory per device they need with the reference model resident.

A stage-3 step runs three programs one after the other: the rollout (prefill of B clips, cache repeated G times,
then the decode loop of B * G rows over prompt + ``rl.max_new_tokens`` slots), the reference's log-probabilities
(B * G rows), and the GRPO update (forward and backward over B * G rows). Resident the whole time: the train
state, the frozen towers (one copy) and the reference (a copy of the trained parameters only). The peak per
device is the resident bytes plus, for the hungriest program, what it needs beyond the resident arrays it reads.
"""
from __future__ import annotations

import functools
import math
import sys
import time

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from microemo_jax.batch import batch_spec
from microemo_jax.generate import EOS_SLOTS, _decode, _prefill  # generate's two programs, lowered abstractly
from microemo_jax.runs.plan import _gib, memory
from microemo_jax.sharding import logical_to_spec, split_batch
from microemo_jax.training import state as state_lib
from microemo_jax.training.flops import count_flops, human
from microemo_jax.training.grpo_step import make_grpo_step, make_logprob_fn
from microemo_jax.training.state import count_params
from microemo_jax.training.step import batch_input_sharding, batch_shards


def device_bytes(tree) -> float:
    """Bytes one device holds of an abstract tree (ShapeDtypeStructs with shardings)."""
    total = 0
    for x in jax.tree.leaves(tree):
        shape = x.sharding.shard_shape(x.shape) if getattr(x, 'sharding', None) is not None else x.shape
        total += math.prod(shape) * jnp.dtype(x.dtype).itemsize
    return float(total)


class RLPlanner:
    """Compiles stage 3's rollout, reference and update programs of ``cfg`` (a stage-3 run config) on ``mesh``."""

    def __init__(self, cfg, mesh):
        self.cfg, self.mesh, self.rl = cfg, mesh, cfg.rl
        self.rules = tuple((str(k), tuple(v) if isinstance(v, list) else v) for k, v in cfg.sharding_rules)
        t = time.perf_counter()
        self.abstract = state_lib.abstract_train_state(cfg, mesh)
        self.abstract_s = time.perf_counter() - t
        self.shards = batch_shards(mesh, self.rules)
        self.rows = batch_input_sharding(mesh, self.rules)

    def _batch(self, clips: int, width: int):
        spec = batch_spec(self.cfg.model, clips, width, mel_frames=self.cfg.data.max_mel_frames)
        return {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=self.rows) for k, v in spec.items()}

    def compile(self, clips: int | None = None, width: int | None = None) -> dict:
        """Compile the three programs for ``clips`` per rollout batch (default rl.batch_size) and a prompt
        ``width`` (default data.max_seq_len); their memory, the resident bytes and the estimated peak."""
        rl, a = self.rl, self.abstract
        clips = clips or rl.batch_size
        width = width or self.cfg.data.max_seq_len
        split_batch(clips, shards=self.shards, accum_steps=self.cfg.optim.grad_accum_steps, mesh=self.mesh,
                    what='--batch (clips per rollout batch)')
        n, t = clips * rl.group_size, rl.max_new_tokens
        batch = self._batch(clips, width)
        inputs = {k: v for k, v in batch.items() if k != 'loss_mask'}
        row = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=self.rows)  # noqa: E731
        tokens, logp = row((n, t), jnp.int32), row((n, t), jnp.float32)
        rollout = dict(tokens=tokens, old_logp=logp, ref_logp=logp, rewards=row((n,), jnp.float32),
                       valid=row((n,), jnp.bool_), parts=row((n, len(rl.rewards)), jnp.float32),
                       eos=jax.ShapeDtypeStruct((EOS_SLOTS,), jnp.int32,
                                                sharding=NamedSharding(self.mesh, PartitionSpec())))
        state_sh, frozen_sh = state_lib.shardings_of(a.state), state_lib.shardings_of(a.frozen)
        weights = (a.state.params, a.frozen)
        programs, t0 = {}, time.perf_counter()
        print(f"plan: compiling stage 3's rollout, reference and update for {clips} clips x G={rl.group_size} on "
              f"{self.mesh.devices.size} {self.mesh.devices.flat[0].platform} devices...", file=sys.stderr, flush=True)
        prefill = dict(max_len=width + t, mesh=self.mesh, rules=self.rules, repeat=rl.group_size)
        programs['prefill'] = _prefill.lower(a.graphdef, weights, inputs, **prefill).compile()
        cache, logits = jax.eval_shape(functools.partial(_prefill, **prefill), a.graphdef, weights, inputs)
        key = jax.eval_shape(lambda: jax.random.key(0))
        settings = (jax.ShapeDtypeStruct((), jnp.float32), jax.ShapeDtypeStruct((), jnp.int32),
                    jax.ShapeDtypeStruct((), jnp.float32))
        eos = (jax.ShapeDtypeStruct((EOS_SLOTS,), jnp.int32), jax.ShapeDtypeStruct((), jnp.int32))
        decode = dict(max_new_tokens=t, mode=(True, rl.top_k > 0, rl.top_p < 1.0), mesh=self.mesh, rules=self.rules,
                      replicate=False)
        programs['decode'] = _decode.lower(a.graphdef, weights, cache, logits, key, settings, eos, **decode).compile()
        ref_fn = make_logprob_fn(a.graphdef, self.cfg, self.mesh, state_sh.params, frozen_sh)
        programs['reference'] = ref_fn.lower(a.state.params, a.frozen, batch, tokens).compile()
        step = make_grpo_step(a.graphdef, self.cfg, self.mesh, state_sh, frozen_sh)
        programs['update'] = step.lower(a.state, a.frozen, batch, rollout).compile()
        compile_s = time.perf_counter() - t0

        resident = {'train state': device_bytes(a.state), 'frozen': device_bytes(a.frozen),
                    'reference': device_bytes(a.state.params)}
        reads = {'prefill': device_bytes(weights), 'decode': device_bytes(weights),
                 'reference': device_bytes((a.state.params, a.frozen)), 'update': device_bytes((a.state, a.frozen))}
        mem = {name: memory(p) for name, p in programs.items()}
        peaks = {name: sum(resident.values()) + mem[name]['total'] - reads[name] for name in programs}
        flops = {'update': count_flops(step, a.state, a.frozen, batch, rollout),
                 'reference': count_flops(ref_fn, a.state.params, a.frozen, batch, tokens)}
        return dict(clips=clips, group_size=rl.group_size, rows=n, width=width, max_new_tokens=t,
                    per_device_rows=n / self.shards, compile_s=compile_s, memory=mem, resident=resident,
                    peak=peaks, peak_program=max(peaks, key=peaks.get), flops=flops,
                    kv_cache_bytes=device_bytes(self._placed_cache(cache)))


    def _placed_cache(self, cache):
        """The rollout's KV cache as the prefill places it (``generate._constrain_cache``: rows over the batch axes,
        kv heads over the rules' kv_heads axis), for its bytes per device."""
        def place(x, axes):
            spec = logical_to_spec(axes, x.shape, self.rules, self.mesh)
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(self.mesh, spec))
        kv = ('layers', 'batch', 'kv_heads', None, None)
        return (place(cache.k, kv), place(cache.v, kv), place(cache.valid, ('batch', None)))


def report(cfg, mesh, planner: RLPlanner, r: dict, out=None) -> None:
    out = out or sys.stdout
    p = lambda *x: print(*x, file=out)  # noqa: E731
    a = planner.abstract
    p(f"plan: {cfg.get('variant', '?')} config, stage 3 (GRPO), mesh {dict(mesh.shape)} "
      f"({mesh.devices.size} x {mesh.devices.flat[0].device_kind}), model.dtype {cfg.model.dtype}, "
      f"remat {cfg.model.remat_policy}")
    p(f"  parameters: {count_params(a.state.params) / 1e6:.1f} M trained (and as many in the reference), "
      f"{count_params(a.frozen) / 1e6:.1f} M frozen (one copy, shared)")
    p(f"  rollout batch: {r['clips']} clips x G={r['group_size']} = {r['rows']} answers ({r['per_device_rows']:g} per "
      f"device), prompt width {r['width']}, {r['max_new_tokens']} new tokens; compiled in {r['compile_s']:.0f} s")
    p("  resident per device: " + ', '.join(f"{k} {_gib(v).strip()}" for k, v in r['resident'].items()))
    p(f"  KV cache of the rollout: {_gib(r['kv_cache_bytes']).strip()} per device")
    p(f"  {'program':10s} {'arguments':>14s} {'temps':>14s} {'total':>14s} {'peak with resident':>20s}")
    for name, m in r['memory'].items():
        p(f"  {name:10s} {_gib(m['arguments']):>14s} {_gib(m['temps']):>14s} {_gib(m['total']):>14s} "
          f"{_gib(r['peak'][name]):>20s}")
    p(f"  peak per device: {_gib(r['peak'][r['peak_program']]).strip()} (during the {r['peak_program']})")
    p(f"  FLOPs per rollout batch: update {human(r['flops']['update'])}, reference {human(r['flops']['reference'])} "
      f"(jaxpr matmul count, all devices)")
