"""BERT-style Q-Former: learned queries that read an encoder through cross-attention.

One module covers both Hugging Face layouts:

* ``Blip2QFormerModel`` (``vocab_size == 0``): the input is the query embeddings only; a LayerNorm is
  applied to them, then the layers run; the output is (B, Q, H).
* ``InstructBlipQFormerModel`` (``vocab_size > 0``): optional text ``input_ids`` are embedded (word +
  absolute position, positions counted from 0 at the first text token), appended after the queries,
  and the LayerNorm runs over the concatenation; the output is (B, Q + L, H).

Every layer runs self-attention over all positions. Layers with ``layer_idx % cross_attention_frequency
== 0`` then let the *query* positions (only) cross-attend to the encoder. Query positions go through the
``*_query`` FFN, text positions through the text FFN. Post-LayerNorm residual blocks, as in BERT.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from microemo_jax.models.layers import (
    ACTIVATIONS,
    Dense,
    Dtype,
    Embed,
    LayerNorm,
    activation,
    attention,
    dropout,
    key_mask,
    split_rng,
)


@dataclasses.dataclass(frozen=True)
class QFormerConfig:
    """Sizes of a Q-Former. ``vocab_size == 0``: no text embeddings (the Blip2QFormerModel layout).

    ``text_ffn`` says whether layers own the text-side FFN (``intermediate``/``output``), which text
    positions need; query positions always use ``intermediate_query``/``output_query``.
    """
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    cross_attention_frequency: int = 2
    encoder_hidden_size: int = 1408
    layer_norm_eps: float = 1e-12
    vocab_size: int = 0
    max_position_embeddings: int = 512
    pad_token_id: int = 0
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    text_ffn: bool = False
    hidden_act: str = 'gelu'

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"QFormerConfig: hidden_size {self.hidden_size} is not a multiple of "
                             f"num_heads {self.num_heads}")
        if self.cross_attention_frequency < 1:
            raise ValueError(f"QFormerConfig: cross_attention_frequency must be >= 1, "
                             f"got {self.cross_attention_frequency}")
        if self.vocab_size > 0 and not self.text_ffn:
            raise ValueError("QFormerConfig: text embeddings (vocab_size > 0) need text_ffn=True, since text "
                             "positions run through the text-side FFN")
        activation(self.hidden_act, 'QFormerConfig: hidden_act')

    def has_cross_attention(self, layer_idx: int) -> bool:
        return layer_idx % self.cross_attention_frequency == 0


def _attend(q, k, v, mask, *, rate: float, rng, implementation):
    """Attention; with dropout on the probabilities (as BERT does) when ``rng`` is given."""
    if rng is None or rate <= 0.0:
        return attention(q, k, v, mask, implementation=implementation)
    logits = jnp.einsum('bqhd,bkhd->bhqk', q, k).astype(jnp.float32) * (q.shape[-1] ** -0.5)
    if mask is not None:
        logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    probs = dropout(jax.nn.softmax(logits, axis=-1), rate, rng).astype(v.dtype)
    out = jnp.einsum('bhqk,bkhd->bqhd', probs, v)
    if mask is not None:  # rows with no allowed key give 0, as in layers.attention
        any_key = jnp.swapaxes(jnp.any(mask, axis=-1), 1, 2)
        out = jnp.where(any_key[..., None], out, jnp.zeros_like(out))
    return out


class QFormerAttention(nnx.Module):
    """Multi-head attention + output dense + dropout + LayerNorm(residual) (BERT's self-output)."""

    def __init__(self, cfg: QFormerConfig, kv_features: int, *, dtype: Dtype, param_dtype: Dtype,
                 attention_impl: str | None, rngs: nnx.Rngs):
        h = cfg.hidden_size
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.num_heads, self.head_dim = cfg.num_heads, h // cfg.num_heads
        self.attention_dropout, self.hidden_dropout = cfg.attention_dropout, cfg.hidden_dropout
        self.attention_impl = attention_impl
        self.query = Dense(h, h, axes=('embed', 'heads'), **kw)
        self.key = Dense(kv_features, h, axes=('embed', 'heads'), **kw)
        self.value = Dense(kv_features, h, axes=('embed', 'heads'), **kw)
        self.out = Dense(h, h, axes=('heads', 'embed'), **kw)
        self.norm = LayerNorm(h, eps=cfg.layer_norm_eps, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: jax.Array, kv: jax.Array, mask: jax.Array | None, *,
                 dropout_rng: jax.Array | None) -> jax.Array:
        b, s, _ = x.shape
        heads = lambda t: t.reshape(t.shape[0], t.shape[1], self.num_heads, self.head_dim)
        r_attn, r_out = split_rng(dropout_rng, 2)
        ctx = _attend(heads(self.query(x)), heads(self.key(kv)), heads(self.value(kv)), mask,
                      rate=self.attention_dropout, rng=r_attn, implementation=self.attention_impl)
        y = dropout(self.out(ctx.reshape(b, s, -1)), self.hidden_dropout, r_out)
        return self.norm(y + x)


class QFormerFFN(nnx.Module):
    """intermediate (dense + activation) -> output (dense + dropout + LayerNorm(residual))."""

    def __init__(self, cfg: QFormerConfig, *, dtype: Dtype, param_dtype: Dtype, rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.hidden_act = cfg.hidden_act
        self.hidden_dropout = cfg.hidden_dropout
        self.intermediate = Dense(cfg.hidden_size, cfg.intermediate_size, axes=('embed', 'mlp'), **kw)
        self.output = Dense(cfg.intermediate_size, cfg.hidden_size, axes=('mlp', 'embed'), **kw)
        self.norm = LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps, **kw)

    def __call__(self, x: jax.Array, *, dropout_rng: jax.Array | None) -> jax.Array:
        y = dropout(self.output(ACTIVATIONS[self.hidden_act](self.intermediate(x))), self.hidden_dropout, dropout_rng)
        return self.norm(y + x)


class QFormerLayer(nnx.Module):
    """Self-attention over queries+text; cross-attention and the query FFN for queries; text FFN for text."""

    def __init__(self, cfg: QFormerConfig, layer_idx: int, *, dtype: Dtype, param_dtype: Dtype,
                 attention_impl: str | None, rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.attention = QFormerAttention(cfg, cfg.hidden_size, attention_impl=attention_impl, **kw)
        self.crossattention = (QFormerAttention(cfg, cfg.encoder_hidden_size, attention_impl=attention_impl, **kw)
                               if cfg.has_cross_attention(layer_idx) else None)
        self.ffn_query = QFormerFFN(cfg, **kw)
        self.ffn_text = QFormerFFN(cfg, **kw) if cfg.text_ffn else None

    def __call__(self, x: jax.Array, encoder: jax.Array, *, num_queries: int, self_mask, cross_mask,
                 dropout_rng: jax.Array | None) -> jax.Array:
        r_self, r_cross, r_query, r_text = split_rng(dropout_rng, 4)
        a = self.attention(x, x, self_mask, dropout_rng=r_self)
        q = a[:, :num_queries]
        if self.crossattention is not None:
            q = self.crossattention(q, encoder, cross_mask, dropout_rng=r_cross)
        q = self.ffn_query(q, dropout_rng=r_query)
        if a.shape[1] == num_queries or self.ffn_text is None:  # no text, or a last layer without text output
            return q
        t = self.ffn_text(a[:, num_queries:], dropout_rng=r_text)
        return jnp.concatenate([q, t], axis=1)


class QFormer(nnx.Module):
    """Q-Former returning ``last_hidden_state`` of Blip2QFormerModel / InstructBlipQFormerModel."""

    def __init__(self, cfg: QFormerConfig, *, dtype: Dtype = jnp.float32, param_dtype: Dtype = jnp.float32,
                 attention_impl: str | None = None, rngs: nnx.Rngs):
        self.cfg, self.dtype = cfg, dtype
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        if cfg.vocab_size > 0:
            self.word_embeddings = Embed(cfg.vocab_size, cfg.hidden_size, axes=('vocab', 'embed'), **kw)
            self.position_embeddings = Embed(cfg.max_position_embeddings, cfg.hidden_size, axes=('pos', 'embed'),
                                             **kw)
        else:
            self.word_embeddings = self.position_embeddings = None
        self.layernorm = LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps, **kw)
        self.layers = nnx.List([QFormerLayer(cfg, i, attention_impl=attention_impl, **kw)
                                for i in range(cfg.num_layers)])

    def prune_text(self, *, text_input: bool, text_output: bool) -> None:
        """Drop text parts a caller never uses, so no parameter goes without a gradient (TimeChat drops them too).

        ``text_input=False``: word/position embeddings and every text FFN (the Blip2QFormerModel layout).
        ``text_output=False``: only the last layer's text FFN; the output then holds the query positions only.
        """
        if not text_input and self.word_embeddings is not None:
            self.word_embeddings = self.position_embeddings = None
            for layer in self.layers:
                layer.ffn_text = None
            self.cfg = dataclasses.replace(self.cfg, vocab_size=0, text_ffn=False)
        if not text_output and len(self.layers):
            self.layers[-1].ffn_text = None

    def resize_vocab(self, rows: int, *, rngs: nnx.Rngs) -> None:
        """Grow the word embedding to ``rows`` (transformers' ``resize_token_embeddings``): rows that exist keep
        their values, new rows get a fresh initialisation."""
        if self.word_embeddings is None:
            raise ValueError("QFormer.resize_vocab: this Q-Former has no text embeddings")
        old = self.word_embeddings
        n = old.embedding.get_value().shape[0]
        if rows <= n:
            return
        new = Embed(rows, self.cfg.hidden_size, axes=('vocab', 'embed'), dtype=self.dtype,
                    param_dtype=old.embedding.get_value().dtype, rngs=rngs)
        new.embedding.set_value(new.embedding.get_value().at[:n].set(old.embedding.get_value()))
        self.word_embeddings = new
        self.cfg = dataclasses.replace(self.cfg, vocab_size=rows)

    def __call__(self, query_embeds: jax.Array, encoder_hidden_states: jax.Array, input_ids: jax.Array | None = None,
                 attention_mask: jax.Array | None = None, *, encoder_attention_mask: jax.Array | None = None,
                 dropout_rng: jax.Array | None = None) -> jax.Array:
        """Run the Q-Former.

        query_embeds: (B, Q, H) (B may be 1 to share the queries across the batch).
        encoder_hidden_states: (B, Se, encoder_hidden_size).
        input_ids: (B, L) text tokens placed after the queries (needs text embeddings).
        attention_mask: (B, Q + L) 1 = attend, over queries *and* text, as in InstructBlipQFormerModel.
        encoder_attention_mask: (B, Se) 1 = valid encoder position.
        Returns (B, Q + L, H); L = 0 without text, or when the last layer's text FFN was pruned.
        """
        self._check(query_embeds, encoder_hidden_states, input_ids, attention_mask, encoder_attention_mask)
        b = encoder_hidden_states.shape[0]
        num_queries = query_embeds.shape[1]
        x = jnp.broadcast_to(query_embeds.astype(self.dtype), (b,) + query_embeds.shape[1:])
        if input_ids is not None:
            positions = jnp.arange(input_ids.shape[1])
            text = self.word_embeddings(input_ids) + self.position_embeddings(positions)[None]
            x = jnp.concatenate([x, text.astype(self.dtype)], axis=1)
        r_emb, *r_layers = split_rng(dropout_rng, 1 + len(self.layers))
        x = dropout(self.layernorm(x), self.cfg.hidden_dropout, r_emb)
        self_mask = key_mask(attention_mask) if attention_mask is not None else None
        cross_mask = key_mask(encoder_attention_mask) if encoder_attention_mask is not None else None
        encoder = encoder_hidden_states.astype(self.dtype)
        for layer, rng in zip(self.layers, r_layers):
            x = layer(x, encoder, num_queries=num_queries, self_mask=self_mask, cross_mask=cross_mask,
                      dropout_rng=rng)
        return x

    def _check(self, query_embeds, encoder_hidden_states, input_ids, attention_mask, encoder_attention_mask):
        cfg = self.cfg
        if query_embeds.ndim != 3 or query_embeds.shape[-1] != cfg.hidden_size:
            raise ValueError(f"QFormer: query_embeds must be (batch, num_queries, {cfg.hidden_size}), "
                             f"got shape {tuple(query_embeds.shape)}")
        if encoder_hidden_states.ndim != 3:
            raise ValueError(f"QFormer: encoder_hidden_states must be (batch, seq, {cfg.encoder_hidden_size}), "
                             f"got shape {tuple(encoder_hidden_states.shape)}")
        if encoder_hidden_states.shape[-1] != cfg.encoder_hidden_size:
            raise ValueError(f"QFormer: encoder_hidden_states width {encoder_hidden_states.shape[-1]} != "
                             f"encoder_hidden_size {cfg.encoder_hidden_size} of the config (shape "
                             f"{tuple(encoder_hidden_states.shape)})")
        b = encoder_hidden_states.shape[0]
        if query_embeds.shape[0] not in (1, b):
            raise ValueError(f"QFormer: query_embeds batch {query_embeds.shape[0]} does not match "
                             f"encoder_hidden_states batch {b} (use 1 to share the queries)")
        total = query_embeds.shape[1]
        if input_ids is not None:
            if self.word_embeddings is None:
                raise ValueError("QFormer: input_ids given, but this Q-Former has no text embeddings "
                                 "(vocab_size=0, the Blip2QFormerModel layout)")
            if input_ids.ndim != 2 or input_ids.shape[0] != b:
                raise ValueError(f"QFormer: input_ids must be (batch={b}, text_len), got shape "
                                 f"{tuple(input_ids.shape)}")
            if not jnp.issubdtype(input_ids.dtype, jnp.integer):
                raise ValueError(f"QFormer: input_ids must be integers, got dtype {input_ids.dtype}")
            if input_ids.shape[1] > cfg.max_position_embeddings:
                raise ValueError(f"QFormer: text length {input_ids.shape[1]} exceeds max_position_embeddings "
                                 f"{cfg.max_position_embeddings}")
            total += input_ids.shape[1]
        if attention_mask is not None and tuple(attention_mask.shape) != (b, total):
            raise ValueError(f"QFormer: attention_mask must be (batch, num_queries + text_len) = {(b, total)} "
                             f"(it covers the queries too), got shape {tuple(attention_mask.shape)}")
        if encoder_attention_mask is not None and \
                tuple(encoder_attention_mask.shape) != tuple(encoder_hidden_states.shape[:2]):
            raise ValueError(f"QFormer: encoder_attention_mask must be (batch, encoder_seq) = "
                             f"{tuple(encoder_hidden_states.shape[:2])}, got shape "
                             f"{tuple(encoder_attention_mask.shape)}")
