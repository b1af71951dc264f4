"""Q-Former module: shapes, layer layout, masking, dropout, and input validation."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from microemo_jax.models.qformer import QFormer, QFormerConfig

B, Q, L, SE, ENC = 2, 5, 4, 7, 24
NO_TEXT = QFormerConfig(hidden_size=32, num_layers=3, num_heads=4, intermediate_size=48, cross_attention_frequency=2,
                        encoder_hidden_size=ENC, layer_norm_eps=1e-6, vocab_size=0, hidden_dropout=0.1,
                        attention_dropout=0.1)
TEXT = QFormerConfig(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=48, cross_attention_frequency=1,
                     encoder_hidden_size=ENC, layer_norm_eps=1e-6, vocab_size=50, max_position_embeddings=8,
                     text_ffn=True)


run = nnx.jit(lambda model, *args, **kwargs: model(*args, **kwargs))  # one compile per input signature


@pytest.fixture(scope='module')
def no_text():
    return QFormer(NO_TEXT, rngs=nnx.Rngs(0))


@pytest.fixture(scope='module')
def text():
    return QFormer(TEXT, rngs=nnx.Rngs(1))


def _inputs(seed=0, batch=B):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    query = jax.random.normal(k1, (batch, Q, 32))
    enc = jax.random.normal(k2, (batch, SE, ENC))
    ids = jax.random.randint(k3, (batch, L), 1, 50)
    return query, enc, ids


def test_layout(no_text, text):
    assert [layer.crossattention is not None for layer in no_text.layers] == [True, False, True]
    assert all(layer.ffn_text is None for layer in no_text.layers)
    assert no_text.word_embeddings is None
    assert all(layer.crossattention is not None and layer.ffn_text is not None for layer in text.layers)
    assert no_text.layers[0].crossattention.key.kernel[...].shape == (ENC, 32)
    for path, var in nnx.iter_graph(text):
        if isinstance(var, nnx.Param):
            axes = var.get_metadata().get('axes')
            assert axes is not None and len(axes) == var.get_value().ndim, path


def test_shapes(no_text, text):
    query, enc, ids = _inputs()
    mask = jnp.ones((B, Q + L))
    assert run(no_text, query, enc).shape == (B, Q, 32)
    out = run(text, query, enc, ids, mask)
    assert out.shape == (B, Q + L, 32)
    # shared queries (batch 1) broadcast over the encoder batch
    shared = run(text, query[:1], enc, ids, mask)
    assert shared.shape == (B, Q + L, 32)
    np.testing.assert_allclose(shared, run(text, jnp.broadcast_to(query[:1], query.shape), enc, ids, mask),
                               rtol=1e-6, atol=1e-6)


def test_masked_encoder_positions_are_ignored(no_text):
    query, enc, _ = _inputs()
    valid = jnp.array([[1] * SE, [1] * 4 + [0] * (SE - 4)])
    out = run(no_text, query, enc, encoder_attention_mask=valid)
    junk = enc.at[1, 4:].set(100.0 * jax.random.normal(jax.random.key(9), (SE - 4, ENC)))
    np.testing.assert_allclose(run(no_text, query, junk, encoder_attention_mask=valid), out, rtol=1e-6, atol=1e-6)
    # without the mask the junk does matter, and row 0 (all valid) matches the unmasked run
    assert not np.allclose(run(no_text, query, junk), out, atol=1e-3)
    np.testing.assert_allclose(run(no_text, query, enc)[0], out[0], rtol=1e-5, atol=1e-5)
    # a valid position does matter
    changed = enc.at[1, 0].add(1.0)
    assert not np.allclose(run(no_text, query, changed, encoder_attention_mask=valid)[1], out[1], atol=1e-4)


def test_padded_text_does_not_reach_valid_positions(text):
    query, enc, ids = _inputs()
    mask = jnp.ones((B, Q + L), jnp.int32).at[1, -2:].set(0)
    out = run(text, query, enc, ids, mask)
    other = run(text, query, enc, ids.at[1, -2:].set(0), mask)
    np.testing.assert_allclose(other[:, :-2], out[:, :-2], rtol=1e-5, atol=1e-5)
    assert not np.allclose(run(text, query, enc, ids.at[1, 0].set(3), mask)[1, :Q], out[1, :Q], atol=1e-4)


def test_dropout(no_text):
    query, enc, _ = _inputs()
    base = run(no_text, query, enc)
    # eager: under jit the many threefry draws take long to compile on CPU
    a = no_text(query, enc, dropout_rng=jax.random.key(1))
    b = no_text(query, enc, dropout_rng=jax.random.key(1))
    c = no_text(query, enc, dropout_rng=jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, base, atol=1e-3) and not np.allclose(a, c, atol=1e-3)


def test_bfloat16(text):
    query, enc, ids = _inputs()
    mask = jnp.ones((B, Q + L))
    model = QFormer(TEXT, dtype=jnp.bfloat16, rngs=nnx.Rngs(1))  # same seed: same weights as `text`
    out = run(model, query, enc, ids, mask)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out, np.float32), run(text, query, enc, ids, mask), atol=0.15)


@pytest.mark.parametrize('call, message', [
    (lambda m, q, e, i: m(q, e[..., :20]), r'encoder_hidden_states width 20 != encoder_hidden_size 24'),
    (lambda m, q, e, i: m(q, e[0]), r'encoder_hidden_states must be \(batch, seq, 24\)'),
    (lambda m, q, e, i: m(q[0], e), r'query_embeds must be \(batch, num_queries, 32\)'),
    (lambda m, q, e, i: m(q[..., :16], e), r'query_embeds must be \(batch, num_queries, 32\)'),
    (lambda m, q, e, i: m(jnp.concatenate([q, q, q]), e), r'query_embeds batch 6 does not match .* batch 2'),
    (lambda m, q, e, i: m(q, e, i[:1]), r'input_ids must be \(batch=2, text_len\)'),
    (lambda m, q, e, i: m(q, e, i[0]), r'input_ids must be \(batch=2, text_len\)'),
    (lambda m, q, e, i: m(q, e, i.astype(jnp.float32)), r'input_ids must be integers'),
    (lambda m, q, e, i: m(q, e, jnp.ones((2, 9), jnp.int32)), r'text length 9 exceeds max_position_embeddings 8'),
    (lambda m, q, e, i: m(q, e, i, jnp.ones((2, L))), r'attention_mask must be .* \(2, 9\) \(it covers the queries'),
    (lambda m, q, e, i: m(q, e, encoder_attention_mask=jnp.ones((2, SE + 1))),
     r'encoder_attention_mask must be \(batch, encoder_seq\) = \(2, 7\)'),
])
def test_bad_inputs(text, call, message):
    query, enc, ids = _inputs()
    with pytest.raises(ValueError, match=message):
        call(text, query, enc, ids)


def test_input_ids_without_text_embeddings(no_text):
    query, enc, ids = _inputs()
    with pytest.raises(ValueError, match=r'no text embeddings \(vocab_size=0'):
        no_text(query, enc, ids)


def test_bad_configs():
    with pytest.raises(ValueError, match='need text_ffn=True'):
        QFormerConfig(vocab_size=10, text_ffn=False)
    with pytest.raises(ValueError, match='not a multiple of num_heads'):
        QFormerConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match='hidden_act'):
        QFormerConfig(hidden_act='mish')
