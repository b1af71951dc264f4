"""A tiny stage-1 setup shared by the training tests (fixture `setup` in tests/training/conftest.py): config,
2x2 mesh, sharded state, one compiled step.

Compiles are the cost here (the tiny MicroEmo train step takes 10-30 s to compile on 2 CPU cores), so
the state is initialised once per session and tests work on copies of it. The config is
``configs/emer.py:tiny`` (dropout off, so gradient-accumulation and eval/train comparisons are exact).
"""
import functools
import types

import jax
import jax.numpy as jnp
import numpy as np

from microemo_jax.batch import synthetic_batch
from microemo_jax.sharding import make_mesh
from microemo_jax.training import state as state_lib, step as step_lib
from tests.support.tiny import tiny_config

# The training core is model-agnostic: leave out the audio and micro-expression branches to halve compile
# times (tests/models cover them). Tests needing them pass ENABLE_ALL to config().
SMALL = ['model.audio.enabled=false', 'model.micro_expression.enabled=false']
ENABLE_ALL = ('model.audio.enabled=true', 'model.micro_expression.enabled=true')
TRAIN = ['total_steps=20', 'optim.warmup_steps=1', 'optim.lr=0.01', 'optim.min_lr=0.001',
         'model.train_llm=false',  # the paper's setting: the LLM base stays frozen
         'model.answer_words.weight=0.5']  # the answer-words head (a switch, off in both configs): its loss too
# Two layers in each scanned stack (tiny has one): remat's recomputation is then a visible share of the FLOPs.
DEPTH = ['model.vision.num_layers=2', 'model.video_qformer.num_layers=2', 'model.llm.num_layers=2']
BATCH, SEQ = 4, 64


@functools.cache
def config(*extra):
    return tiny_config(*SMALL, *TRAIN, *DEPTH, *extra)


def copy_tree(tree):
    """A copy with fresh buffers (same shardings), so a donating step can consume it."""
    return jax.tree.map(jnp.copy, tree)


def make_setup():
    cfg = config()
    mesh = make_mesh({'data': 1, 'fsdp': 2, 'tensor': 2})
    abstract = state_lib.abstract_train_state(cfg, mesh)
    graphdef, state, frozen = state_lib.init_train_state(cfg, mesh, abstract=abstract)
    state_sh, frozen_sh = state_lib.shardings_of(abstract.state), state_lib.shardings_of(abstract.frozen)
    host_batch = synthetic_batch(cfg.model, BATCH, SEQ, seed=1)
    host_batch['names'] = np.array([f'clip{i}' for i in range(BATCH)])  # host-only metadata, dropped
    return types.SimpleNamespace(
        cfg=cfg, mesh=mesh, abstract=abstract, graphdef=graphdef, state=state, frozen=frozen,
        state_sharding=state_sh, frozen_sharding=frozen_sh, host_batch=host_batch,
        batch=step_lib.device_batch(host_batch, mesh, cfg.sharding_rules),
        train_step=step_lib.make_train_step(graphdef, cfg, mesh, state_sh, frozen_sh))


# `python -m microemo_jax.train`, paused after step 1 until SIGTERM (or 300 s): it touches the file named by
# MICROEMO_TEST_PAUSED, so a test knows when to send the signal (the SIGTERM tests of stages 1-2 and 3).
PAUSING_TRAIN = """
import os, sys, time
from microemo_jax.training import preemption
should_stop = preemption.PreemptionGuard.should_stop
def paused(self, step):
    if step == 1:
        open(os.environ['MICROEMO_TEST_PAUSED'], 'w').close()
        deadline = time.time() + 300
        while not self._stop.is_set() and time.time() < deadline:
            time.sleep(0.05)
    return should_stop(self, step)
preemption.PreemptionGuard.should_stop = paused
from microemo_jax.train import main
main(sys.argv[1:])
"""
