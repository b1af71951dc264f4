"""Schedule values, the weight-decay mask, and that the mask is what AdamW uses."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from microemo_jax.config import load_config
from microemo_jax.models.global_local import GlobalLocalAttention
from microemo_jax.models.layers import Dense, Embed, LayerNorm
from microemo_jax.models.microemo import MicroEmo
from microemo_jax.training.optimizer import decays, is_gate, make_optimizer, make_schedule, weight_decay_mask
from microemo_jax.training.step import gate_values
from tests.support.training import ENABLE_ALL, config


def test_warmup_then_cosine_to_min_lr():
    cfg = load_config('configs/emer.py:demo', ['total_steps=110', 'optim.warmup_steps=10', 'optim.lr=0.001',
                                               'optim.min_lr=0.0001'])
    s = make_schedule(cfg)
    np.testing.assert_allclose([float(s(k)) for k in (0, 5, 10)], [0.0, 5e-4, 1e-3], rtol=1e-6)
    np.testing.assert_allclose(float(s(60)), 1e-4 + 0.5 * (1e-3 - 1e-4), rtol=1e-5)  # half-way down the cosine
    np.testing.assert_allclose([float(s(110)), float(s(500))], [1e-4, 1e-4], rtol=1e-6)
    assert all(float(s(k)) >= float(s(k + 1)) for k in range(10, 110))


def test_bad_optimiser_config_is_refused():
    with pytest.raises(ValueError, match='optim.min_lr'):                   # refused when the config loads
        make_optimizer(load_config('configs/emer.py:demo', ['optim.min_lr=0.1']))
    total = load_config('configs/emer.py:demo').total_steps
    with pytest.raises(ValueError, match='warmup_steps'):                   # no step left after the warmup
        make_schedule(load_config('configs/emer.py:demo', [f'optim.warmup_steps={total}']))


def test_weight_decay_mask_decays_matrices_only():
    cfg = config(*ENABLE_ALL)
    model = nnx.eval_shape(lambda: MicroEmo(cfg.model, use_lora=True, rngs=nnx.Rngs(0)))
    flat = {'/'.join(map(str, p)): decays(v) for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    expect = {
        'video_proj/kernel': True, 'video_proj/bias': False,
        'llm/layers/blocks/mlp/up_proj/kernel': True,                 # scanned ('layers', 'embed', 'mlp')
        'llm/layers/blocks/self_attn/q_proj/lora/a': True,            # LoRA adapters decay
        'llm/layers/blocks/self_attn/q_proj/lora/b': True,
        'llm/lm_head/kernel': True,                                   # ('embed', 'vocab'): an output matrix
        'llm/embed_tokens/embedding': False,                          # ('vocab', 'embed') table
        'llm/layers/blocks/input_layernorm/scale': False,             # ('layers', 'norm')
        'llm/norm/scale': False,
        'frame_encoder/query_tokens': False,                          # (None, 'query', 'embed')
        'frame_encoder/vit/embeddings/position_embedding': False,     # ('pos', 'embed')
        'frame_encoder/vit/embeddings/class_embedding': False,        # rank 1
        'video_qformer/frame_pos': False,
        'video_qformer/slots/slot_embed': False,                      # (None, 'embed') table
        'micro_expression/temporal_pos': False,
        'global_local/attn_gate': False,
        'global_local/mlp/up/kernel': True,
    }
    assert {k: flat[k] for k in expect} == expect
    mask_leaves = jax.tree.leaves(weight_decay_mask(nnx.state(model, nnx.Param)))
    assert len(mask_leaves) == len(flat) and set(mask_leaves) == {True, False}


def test_adamw_applies_decay_only_where_the_mask_says():
    class Tiny(nnx.Module):
        def __init__(self, rngs):
            self.emb = Embed(8, 4, rngs=rngs)
            self.dense = Dense(4, 4, axes=('embed', 'mlp'), rngs=rngs)
            self.norm = LayerNorm(4, rngs=rngs)

    cfg = load_config('configs/emer.py:demo', ['optim.warmup_steps=0', 'optim.weight_decay=0.5', 'optim.lr=0.1',
                                               'optim.min_lr=0.1'])
    params = nnx.state(Tiny(nnx.Rngs(0)), nnx.Param)
    params = jax.tree.map(lambda x: jnp.ones_like(x), params)
    tx = make_optimizer(cfg)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    new = nnx.to_flat_state(jax.tree.map(lambda p, u: p + u, params, updates))
    values = {'/'.join(map(str, p)): float(np.asarray(v.get_value()).mean()) for p, v in new}
    np.testing.assert_allclose(values['dense/kernel'], 1 - 0.1 * 0.5, rtol=1e-6)  # decayed
    for name in ('dense/bias', 'emb/embedding', 'norm/scale', 'norm/bias'):
        assert values[name] == 1.0, name


class _Gated(nnx.Module):
    def __init__(self, rngs):
        self.dense = Dense(4, 4, axes=('embed', 'mlp'), rngs=rngs)
        self.attn_gate = nnx.Param(jnp.zeros((1,)))


@pytest.mark.parametrize('multiplier', [1.0, 10.0])
def test_gates_learn_gate_lr_multiplier_times_faster(multiplier):
    cfg = load_config('configs/emer.py:demo', ['optim.warmup_steps=0', 'optim.lr=0.01', 'optim.min_lr=0.01',
                                               'optim.weight_decay=0.0', f'optim.gate_lr_multiplier={multiplier}'])
    params = nnx.state(_Gated(nnx.Rngs(0)), nnx.Param)
    grads = jax.tree.map(jnp.ones_like, params)
    tx = make_optimizer(cfg)
    updates, _ = tx.update(grads, tx.init(params), params)
    flat = {'/'.join(map(str, p)): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(updates)}
    np.testing.assert_allclose(flat['dense/kernel'], -0.01, rtol=1e-4)          # Adam's first step: lr x sign
    np.testing.assert_allclose(flat['attn_gate'], -0.01 * multiplier, rtol=1e-4)
    assert is_gate(('global_local', 'mlp_gate')) and not is_gate(('llm', 'mlp', 'gate_proj', 'kernel'))
    with pytest.raises(ValueError, match='gate_lr_multiplier'):
        make_optimizer(load_config('configs/emer.py:demo', ['optim.gate_lr_multiplier=0.0']))


def test_gate_values_are_the_tanh_of_every_gate():
    class Branch(nnx.Module):
        def __init__(self, rngs):
            self.global_local = GlobalLocalAttention(8, 8, 2, gate_init=0.5, rngs=rngs)
            self.mlp = Dense(4, 4, axes=('embed', 'mlp'), rngs=rngs)          # no gate: not reported

    values = {k: float(v) for k, v in gate_values(nnx.state(Branch(nnx.Rngs(0)), nnx.Param)).items()}
    assert values == pytest.approx({'gate/global_local.attn': np.tanh(0.5), 'gate/global_local.mlp': np.tanh(0.5)})
    closed = GlobalLocalAttention(8, 8, 2, rngs=nnx.Rngs(0))                          # the default: closed
    assert {k: float(v) for k, v in gate_values(nnx.state(closed, nnx.Param)).items()} == {'gate/attn': 0.0,
                                                                                          'gate/mlp': 0.0}
