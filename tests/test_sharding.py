import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from microemo_jax.config import load_config
from microemo_jax.models.layers import Dense, Embed
from microemo_jax.sharding import ShardingError, logical_to_spec, make_mesh, mesh_shape, state_shardings

RULES = load_config('configs/emer.py:demo').sharding_rules


def test_mesh_shape_resolves_minus_one_and_rejects_bad_meshes():
    assert mesh_shape({'data': -1, 'fsdp': 2, 'tensor': 1}, 8) == (4, 2, 1)
    with pytest.raises(ShardingError, match='does not divide the 6 devices'):
        mesh_shape({'data': -1, 'fsdp': 4}, 6)
    with pytest.raises(ShardingError, match='needs 8 devices, but 4'):
        mesh_shape({'data': 2, 'fsdp': 2, 'tensor': 2}, 4)
    with pytest.raises(ShardingError, match='at most one'):
        mesh_shape({'data': -1, 'fsdp': -1}, 4)
    with pytest.raises(ShardingError, match='unknown'):
        mesh_shape({'model': 2}, 4)


def test_rules_map_logical_axes_to_mesh_axes():
    mesh = make_mesh({'data': 1, 'fsdp': 2, 'tensor': 2})
    assert logical_to_spec(('embed', 'mlp'), (8, 16), RULES, mesh) == P('fsdp', 'tensor')
    assert logical_to_spec(('mlp', 'embed'), (16, 8), RULES, mesh) == P('tensor', 'fsdp')
    assert logical_to_spec(('embed', 'embed'), (8, 8), RULES, mesh) == P('fsdp', None)  # a mesh axis once
    assert logical_to_spec(('vocab', 'embed'), (7, 8), RULES, mesh) == P(None, 'fsdp')  # 7 not divisible
    assert logical_to_spec(('layers', 'norm'), (2, 8), RULES, mesh) == P(None, None)
    with pytest.raises(ShardingError, match="'bogus' has no entry"):
        logical_to_spec(('bogus',), (4,), RULES, mesh)


def test_state_shardings_follow_parameter_annotations():
    mesh = make_mesh({'data': 1, 'fsdp': 2, 'tensor': 2})

    class Tiny(nnx.Module):
        def __init__(self, rngs):
            self.emb = Embed(16, 8, rngs=rngs)
            self.up = Dense(8, 32, axes=('embed', 'mlp'), rngs=rngs)

    model = Tiny(nnx.Rngs(0))
    shardings = state_shardings(nnx.state(model), mesh, RULES)
    assert shardings['emb']['embedding'].get_value().spec == P('tensor', 'fsdp')
    assert shardings['up']['kernel'].get_value().spec == P('fsdp', 'tensor')
    assert shardings['up']['bias'].get_value().spec == P('tensor')
    placed = jax.device_put(nnx.state(model), shardings)
    assert placed['up']['kernel'].get_value().sharding.spec == P('fsdp', 'tensor')
    assert len(jax.devices()) == 4


def test_activations_are_pinned_to_the_batch_axes_inside_the_step_context():
    from microemo_jax.sharding import activation_sharding, constrain_batch
    mesh = make_mesh({'data': 2, 'fsdp': 2, 'tensor': 1})
    x = jnp.ones((8, 3))
    assert constrain_batch(x) is x  # outside the context: untouched

    def f(x):
        with activation_sharding(mesh, RULES):
            return constrain_batch(x * 2)
    out = jax.jit(f)(x)
    assert out.sharding.spec[0] == ('data', 'fsdp')
    odd = jax.jit(f)(jnp.ones((6, 3)))  # 6 does not divide over 4 devices: left replicated
    assert all(s is None for s in odd.sharding.spec)
