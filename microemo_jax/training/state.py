"""The train state, created sharded on the mesh (never whole on one host), and parameter checkpoints in/out.

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
"""
from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from microemo_jax.checkpoint import read_quietly, save_params, unreadable
from microemo_jax.models.microemo import MicroEmo
from microemo_jax.sharding import state_shardings
from microemo_jax.training.stages import trainable_filter
from microemo_jax.training.optimizer import make_optimizer


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
    return MicroEmo(cfg.model, use_lora=stage == 2, rngs=nnx.Rngs(params=key))


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
        _, params, frozen = nnx.split(model, trainable_filter(stage, train_llm=cfg.model.train_llm), ...)
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


def init_train_state(cfg, mesh: Mesh, *, stage: int | None = None, params_path: str | None = None,
                     abstract: Abstract | None = None):
    """(graphdef, TrainState, frozen) created sharded inside one jit.

    ``params_path`` (default ``cfg.init.params``; '' = fresh init) is a parameter checkpoint folder
    (``convert`` output or ``export_params``); it is validated against the model before anything
    compiles, restored straight onto the shardings, and parameters it lacks keep their fresh init.
    """
    stage = _stage(cfg, stage)
    abstract = abstract or abstract_train_state(cfg, mesh, stage)
    if params_path is None:
        params_path = cfg.get('init', {}).get('params', '')
    restored = load_params(params_path, abstract) if params_path else {}
    out_sh = (shardings_of(abstract.state), shardings_of(abstract.frozen))
    init = jax.jit(_init_fn(cfg, stage), out_shardings=out_sh, donate_argnums=(1,))
    state, frozen = init(jax.random.key(cfg.seed), restored)
    return abstract.graphdef, state, frozen


def _model_params(abstract: Abstract) -> dict[str, jax.ShapeDtypeStruct]:
    """{parameter name: sharded ShapeDtypeStruct} of the whole model (trainable and frozen)."""
    out = {}
    for tree in (abstract.state.params, abstract.frozen):
        for path, var in nnx.to_flat_state(tree):
            if isinstance(var, nnx.Param):
                out[path_name(path)] = var.get_value()
    return out


def load_params(path: str, abstract: Abstract) -> dict[str, jax.Array]:
    """Restore a parameter checkpoint onto the model's shardings: {parameter name: array}.

    Raises (before any step compiles) if a parameter's shape differs or the checkpoint holds
    parameters this model does not have (e.g. LoRA adapters into a stage-1 model): nothing is dropped
    silently. Parameters the checkpoint lacks are simply not returned.
    """
    path = os.path.abspath(path)
    params_dir = os.path.join(path, 'params')
    if not os.path.isdir(params_dir):
        raise FileNotFoundError(f"init.params={path!r} is not a microemo-jax parameter checkpoint (no params/ "
                                f"folder); make one with `python -m microemo_jax.convert` or export_params")
    wanted = _model_params(abstract)
    with ocp.StandardCheckpointer() as ckptr:
        meta, error = read_quietly(ckptr.metadata, params_dir)
        if error is not None:  # a damaged _METADATA or manifest
            raise unreadable(path, error)
        saved = meta.item_metadata.tree
        flat = {}
        for keys, meta in jax.tree_util.tree_flatten_with_path(saved)[0]:
            names = [str(getattr(k, 'key', getattr(k, 'name', k))) for k in keys]
            if names and names[-1] == 'value':
                names = names[:-1]
            flat['/'.join(names)] = (keys, meta)
        extra = sorted(set(flat) - set(wanted))
        if extra:
            raise ValueError(f"{path}: the checkpoint holds {len(extra)} parameters this model lacks "
                             f"(first: {extra[:3]}); check model.* and stage (LoRA adapters need stage=2)")
        bad = [f"{name}: checkpoint {tuple(meta.shape)} vs model {wanted[name].shape}"
               for name, (_, meta) in flat.items() if tuple(meta.shape) != wanted[name].shape]
        if bad:
            raise ValueError(f"{path}: {len(bad)} parameter shapes do not match the model built from this config:"
                             "\n  " + "\n  ".join(bad[:10]))
        target = _nested_target(saved, {name: wanted[name] for name in flat}, flat)
        restored, error = read_quietly(ckptr.restore, params_dir, target)
        if error is not None:  # names and shapes were checked above: this is a damaged file
            raise unreadable(path, error)
    return {name: _get(restored, keys) for name, (keys, _) in flat.items()}


def _key(k):
    return getattr(k, 'key', getattr(k, 'name', k))


def _nested_target(saved, wanted: dict, flat: dict):
    """A copy of the checkpoint's nested-dict tree with sharded ShapeDtypeStructs as leaves."""
    leaves = {tuple(_key(k) for k in keys): wanted[name] for name, (keys, _) in flat.items()}

    def build(node, prefix):
        if isinstance(node, dict):
            return {k: build(v, prefix + (k,)) for k, v in node.items()}
        return leaves[prefix]
    return build(saved, ())


def _get(tree, keys):
    for k in keys:
        tree = tree[_key(k)]
    return tree


def export_params(path: str, cfg, graphdef: nnx.GraphDef, state: TrainState, frozen: nnx.State) -> None:
    """Write the whole model's parameters in the ``checkpoint.save_params`` format (collective; all hosts call it).

    This is what ``init.params`` of a stage-2 run, ``evaluate`` and ``predict`` read.
    """
    model = nnx.merge(graphdef, state.params, frozen)
    save_params(path, model, cfg.model, extra={'exported_from_step': int(jax.device_get(state.step))})


def count_params(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))
