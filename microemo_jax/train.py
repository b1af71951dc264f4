"""Train MicroEmo: sharded three-stage training with preemption-safe, resumable checkpoints.

    python -m microemo_jax.train --config configs/emer.py[:VARIANT] --workdir DIR [--config.KEY=VALUE ...]

Stage 1 (``--config.stage=1``) trains the Q-Formers, the micro-expression branch, the global-local
attention and the projections with the LLM frozen; stage 2 adds LoRA on the LLM and usually starts
from stage 1's exported parameters (``--config.init.params=STAGE1_DIR/params``). Stage 3 is reinforcement
fine-tuning with GRPO, rewarded by the emotion metrics, from stage 2's (``--config.stage=3
--config.init.params=STAGE2_DIR/params``; its settings are the config's ``rl`` section, runs/grpo.py).

The run resumes by itself from DIR/checkpoints (same data order, same random numbers; a checkpoint that
cannot be read is skipped, said so and moved to DIR/checkpoints-corrupt), saves on SIGTERM or a
preemption notice, logs to stdout, DIR/metrics.jsonl and DIR/tensorboard, and at the end writes
DIR/params (the whole model, for the next stage, ``evaluate`` and ``predict``). While it runs it holds
DIR/.lock: a second run on the same DIR is refused with a message naming the first one's process.
``configs/emer.py:demo`` needs nothing else: the demo corpus is generated and prepared on first use.
"""
from __future__ import annotations

import json
import os
import sys

import absl.flags
import jax

from microemo_jax import cli_checks
from microemo_jax.config import ConfigError, config_from_argv
from microemo_jax.hf.safetensors_io import CheckpointError
from microemo_jax.lock import LockHeld
from microemo_jax.runs import grpo, supervised
from microemo_jax.runs.workdir import TrainError
from microemo_jax.sharding import ShardingError
from microemo_jax.training import distributed
from microemo_jax.training.checkpointing import CheckpointUnreadable


def parse(argv):
    parser = cli_checks.Parser(prog='python -m microemo_jax.train', description=__doc__.split('\n')[0])
    parser.add_argument('--workdir', required=True, type=cli_checks.out_dir,
                        help='checkpoints, logs and exported params go here')
    try:
        cfg, rest = config_from_argv(argv)
    except ConfigError as e:
        parser.error(str(e))
    return cfg, parser.parse_args(rest)


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    distributed.maybe_initialize()  # before anything else touches JAX
    if not os.environ.get('JAX_COMPILATION_CACHE_DIR'):  # re-runs and resumes skip most of the compile
        jax.config.update('jax_compilation_cache_dir', os.path.expanduser('~/.cache/microemo-jax/jax-compile'))
        jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
    absl.flags.FLAGS.mark_as_parsed()  # Grain's worker processes read absl flags
    cfg, args = parse(argv)
    try:
        last = (grpo.run if cfg.stage == 3 else supervised.run)(cfg, args.workdir)
    except (TrainError, ConfigError, ShardingError, CheckpointError, CheckpointUnreadable, LockHeld,
            FileNotFoundError, NotADirectoryError, PermissionError, ValueError) as e:
        sys.exit(f'error: {e}')
    print(json.dumps({k: float(v) for k, v in last.items() if isinstance(v, (int, float))}), flush=True)


if __name__ == '__main__':
    main()
