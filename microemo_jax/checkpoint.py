"""Orbax checkpoints of model parameters (the format ``convert`` writes and training starts from).

A checkpoint folder holds ``params/`` (an Orbax PyTree of the nnx.Param state, restored onto any
mesh by passing abstract arrays with shardings), ``model_config.json`` (the ``model`` section of the
config it was made for) and, from ``convert``, ``sources.json``.
"""
from __future__ import annotations

import json
import os

import jax
import orbax.checkpoint as ocp
from flax import nnx


def save_params(path: str, model: nnx.Module, model_config, extra: dict | None = None) -> None:
    path = os.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    state = nnx.state(model, nnx.Param)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(os.path.join(path, 'params'), state, force=True)
        ckptr.wait_until_finished()
    with open(os.path.join(path, 'model_config.json'), 'w') as f:
        f.write(model_config.to_json_best_effort(indent=2))
    if extra:
        with open(os.path.join(path, 'sources.json'), 'w') as f:
            json.dump(extra, f, indent=2)


def restore_params(path: str, model: nnx.Module, shardings=None) -> nnx.Module:
    """Fill ``model``'s parameters from ``path`` (shapes must match; raises naming the first mismatch)."""
    path = os.path.abspath(path)
    params_dir = os.path.join(path, 'params')
    if not os.path.isdir(params_dir):
        raise FileNotFoundError(f"{path} is not a microemo-jax parameter checkpoint (no params/ folder)")
    target = nnx.state(model, nnx.Param)
    abstract = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype), target)
    if shardings is not None:
        abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
    with ocp.StandardCheckpointer() as ckptr:
        try:
            restored = ckptr.restore(params_dir, abstract)
        except ValueError as e:
            raise ValueError(f"{path}: checkpoint does not fit the model built from this config: {e}") from e
    nnx.update(model, restored)
    return model
