"""The train state, created sharded on the mesh (never whole on one host).

``TrainState`` holds only what the optimiser updates: the stage's trainable parameters (an nnx.State
selected by ``stages.trainable_filter``), the optax state, the step and the rng key. The frozen towers
(ViT, Whisper, LLM base weights) are a separate ``nnx.State`` passed to the step as a read-only input:
they are never differentiated, hold no optimiser state and are not donated.

Everything is first built abstractly (``nnx.eval_shape`` / ``jax.eval_shape``: shapes, dtypes, logical
axes), shardings are derived from the config's rules (``sharding.state_shardings``), and the real arrays
are created by one ``jax.jit`` with those ``out_shardings``: each device computes only its own shards.
The same abstract tree (ShapeDtypeStructs carrying shardings) is the Orbax restore target and the input
of ahead-of-time compiles (``plan``).

The rng key is stored as raw ``uint32`` key data (not a typed key array) so that Orbax and every tool
that reads checkpoints see a plain array.

Parameter folders are not read or written here: ``params.load_params`` restores a folder onto
``model_params(abstract)`` and the caller passes the result to ``init_train_state``; ``params.export_params``
writes a run's model back out.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from microemo_jax.models.microemo import MicroEmo
from microemo_jax.sharding import state_shardings
from microemo_jax.training.optimizer import make_optimizer
from microemo_jax.training.stages import model_trainable_filter, uses_lora


@struct.dataclass
class TrainState:
    step: jax.Array          # int32 scalar: steps done, skipped non-finite ones included (the data position);
                             # the schedule reads optax's own count, which skips them (step.schedule_count)
    params: nnx.State        # trainable parameters of the stage (float32 master weights)
    opt_state: Any           # optax state over ``params`` only
    rng: jax.Array           # uint32 key data; the step splits its dropout key from it


class Abstract(NamedTuple):
    """Static description of a run's arrays: ShapeDtypeStructs whose ``.sharding`` is set."""
    graphdef: nnx.GraphDef
    state: TrainState
    frozen: nnx.State


def shardings_of(tree):
    """The NamedSharding tree of an abstract tree (for jit in/out_shardings)."""
    return jax.tree.map(lambda x: x.sharding, tree)


def _stage(cfg, stage):
    return cfg.stage if stage is None else stage


def _build(cfg, stage: int, key) -> MicroEmo:
    return MicroEmo(cfg.model, use_lora=uses_lora(stage), rngs=nnx.Rngs(params=key))


def _init_fn(cfg, stage: int):
    """key -> (TrainState, frozen); optionally overwriting parameters with ``restored`` {path: array}."""
    tx = make_optimizer(cfg)

    def init(seed_key, restored):
        model = _build(cfg, stage, jax.random.fold_in(seed_key, 0))
        if restored:
            for path, var in nnx.iter_graph(model):
                name = path_name(path)
                if isinstance(var, nnx.Variable) and name in restored:
                    var.set_value(restored[name].astype(var.get_value().dtype))
        _, params, frozen = nnx.split(model, model_trainable_filter(stage, cfg.model), ...)
        state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                           rng=jax.random.key_data(jax.random.fold_in(seed_key, 1)))
        return state, frozen

    return init


def path_name(path) -> str:
    """'llm/layers/blocks/self_attn/q_proj/kernel': the name of a parameter in messages and checkpoints."""
    return '/'.join(str(p) for p in path)


def model_graphdef(cfg, stage: int | None = None) -> nnx.GraphDef:
    """The model's static structure for ``cfg`` (no arrays are created)."""
    stage = _stage(cfg, stage)
    return nnx.split(nnx.eval_shape(lambda: _build(cfg, stage, jax.random.key(0))))[0]


def abstract_train_state(cfg, mesh: Mesh, stage: int | None = None) -> Abstract:
    """Abstract TrainState and frozen state (ShapeDtypeStruct with shardings) for ``cfg`` on ``mesh``."""
    stage = _stage(cfg, stage)
    graphdef = model_graphdef(cfg, stage)
    state, frozen = jax.eval_shape(_init_fn(cfg, stage), jax.random.key(0), {})
    rules = cfg.sharding_rules
    replicated = NamedSharding(mesh, P())
    state_sh = TrainState(step=replicated, params=state_shardings(state.params, mesh, rules),
                          opt_state=state_shardings(state.opt_state, mesh, rules), rng=replicated)
    frozen_sh = state_shardings(frozen, mesh, rules)

    def attach(a, s):
        return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s)
    return Abstract(graphdef, jax.tree.map(attach, state, state_sh), jax.tree.map(attach, frozen, frozen_sh))


def init_train_state(cfg, mesh: Mesh, *, stage: int | None = None, restored: dict[str, jax.Array] | None = None,
                     abstract: Abstract | None = None):
    """(graphdef, TrainState, frozen) created sharded inside one jit.

    ``restored``: {parameter name: array} to start from instead of the fresh init, already on the
    shardings (``params.load_params(cfg.init.params, model_params(abstract))``, which checks names and
    shapes before anything compiles); parameters it lacks keep their fresh init.
    """
    stage = _stage(cfg, stage)
    abstract = abstract or abstract_train_state(cfg, mesh, stage)
    out_sh = (shardings_of(abstract.state), shardings_of(abstract.frozen))
    init = jax.jit(_init_fn(cfg, stage), out_shardings=out_sh, donate_argnums=(1,))
    state, frozen = init(jax.random.key(cfg.seed), restored or {})
    return abstract.graphdef, state, frozen


def model_params(abstract: Abstract) -> dict[str, jax.ShapeDtypeStruct]:
    """{parameter name: sharded ShapeDtypeStruct} of the whole model (trainable and frozen)."""
    out = {}
    for tree in (abstract.state.params, abstract.frozen):
        for path, var in nnx.to_flat_state(tree):
            if isinstance(var, nnx.Param):
                out[path_name(path)] = var.get_value()
    return out


def count_params(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))
