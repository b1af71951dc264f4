r"""Plan memory and FLOPs of a training run ahead of time: compile its train step for a target mesh.

    python -m microemo_jax.plan --config configs/emer.py:paper --mesh fsdp=8 --memory-gib 80
    python -m microemo_jax.plan --config configs/emer.py:paper --mesh data=2,fsdp=4 --batch 16 --config.stage=2
    python -m microemo_jax.plan --config configs/emer.py:paper --mesh fsdp=8 --config.stage=3     # GRPO (rl.*)

Nothing is allocated: the train state and the batch are abstract (shapes, dtypes, shardings) and the
step is compiled with ``jax.jit(...).lower(...).compile()`` (``runs/plan.py``). When the machine has fewer
devices of its default kind than the mesh needs, the mesh is made of fake CPU devices (``JAX_NUM_CPU_DEVICES``, set here
before JAX starts). Memory figures then come from the CPU compiler, whose buffer assignment and
fusion differ from GPU/TPU (e.g. bf16 math may be widened): read them as estimates.

Reported per device: arguments (state, frozen weights, batch), outputs, aliased (donated) bytes, temps
(activations, gradients, workspace), generated code, and the total. FLOPs: the jaxpr count of one step
(global, scan-aware; ``training/flops.py``) and XLA's own figure (per device; while-loop bodies counted
once). Stage 3 (``--config.stage=3``) compiles its rollout (prefill + decode of ``--batch`` clips x
``rl.group_size`` answers), reference and GRPO-update programs instead and reports each one's memory and the
peak with the train state, the frozen towers and the reference resident (``runs/plan_rl.py``; ``--batch`` is
clips per rollout batch, default ``rl.batch_size``; no batch search). The largest per-device batch that fits
``--memory-gib`` is found by ``--search``:
``extrapolate`` (default) compiles at two batch sizes and fits memory = fixed + slope * batch;
``binary`` compiles until it brackets the limit (slower, exact for this compiler); ``none`` skips.
"""
from __future__ import annotations

import json
import math
import os
import sys

from microemo_jax import cli_checks
from microemo_jax.config import ConfigError, config_from_argv


def _prepare_devices(n: int) -> None:
    """Ask for ``n`` CPU devices before JAX starts (used when the default backend has fewer than ``n``)."""
    if 'jax' in sys.modules:
        from jax._src import xla_bridge  # only when JAX is already imported: then it may be too late
        if xla_bridge.backends_are_initialized():
            return  # too late to change; _devices() checks the count
    if int(os.environ.get('JAX_NUM_CPU_DEVICES', '0') or 0) < n:
        os.environ['JAX_NUM_CPU_DEVICES'] = str(n)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = cli_checks.Parser(prog='python -m microemo_jax.plan', description=__doc__.split('\n')[0])
    parser.add_argument('--mesh', required=True, type=cli_checks.mesh_spec,
                        help="target mesh over data, fsdp, tensor, e.g. fsdp=8 or data=2,fsdp=4")
    parser.add_argument('--batch', type=cli_checks.positive_int, default=None,
                        help="global batch (default: data.batch_size)")
    parser.add_argument('--memory-gib', type=cli_checks.positive_float, default=None,
                        help="per-device memory budget for the batch search (default: none, no search)")
    parser.add_argument('--search', choices=('extrapolate', 'binary', 'none'), default='extrapolate')
    parser.add_argument('--json', type=cli_checks.out_file, default=None,
                        help="also write the numbers to this JSON file")
    try:
        cfg, rest = config_from_argv(argv)
    except ConfigError as e:
        parser.error(str(e))
    args = parser.parse_args(rest)
    sizes = args.mesh
    n = math.prod(sizes.values())
    _prepare_devices(n)
    from microemo_jax.runs.plan import GiB, Planner, devices, report  # JAX start-up: after the CPU device count is set
    from microemo_jax.sharding import make_mesh  # (imports jax too)

    try:
        mesh = make_mesh({**{'data': 1, 'fsdp': 1, 'tensor': 1}, **sizes}, devices(n))
        if cfg.stage == 3:
            return _plan_stage3(cfg, mesh, sizes, args)
        planner = Planner(cfg, mesh)
        batch = args.batch or cfg.data.batch_size
        main_result = planner.compile(batch, flops=True)   # a batch the mesh cannot split: one line, below
    except (ValueError, RuntimeError) as e:                  # ShardingError and ConfigError are ValueErrors
        cli_checks.fail(e)
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


def _plan_stage3(cfg, mesh, sizes, args) -> int:
    """Stage 3: the rollout, reference and update programs (``runs/plan_rl.py``); no batch search."""
    from microemo_jax.runs.plan_rl import RLPlanner, report  # JAX start-up: imported after the device count is set
    from microemo_jax.training.rl_config import run_config
    rl_cfg = run_config(cfg)
    planner = RLPlanner(rl_cfg, mesh)
    result = planner.compile(args.batch)
    report(rl_cfg, mesh, planner, result)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(mesh=sizes, stage=3, main=result), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
