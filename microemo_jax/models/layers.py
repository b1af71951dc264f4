"""Building blocks shared by every tower: parameters with logical axis names, dense, norms, attention,
and the one table of activation functions the towers' configs name.

Each parameter carries its logical axis names in the Variable metadata key ``axes`` (e.g.
``('embed', 'mlp')``); ``microemo_jax.sharding`` maps them to mesh axes with the rules table of the
config. Modules take ``dtype`` (compute) and ``param_dtype`` (storage) so that frozen towers can be
stored in bfloat16 while trained parts keep float32 master weights.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

Axes = tuple[str | None, ...]
Dtype = Any

default_kernel_init = nnx.initializers.normal(stddev=0.02)

# transformers' ACT2FN names, with the same functions: 'gelu' is the exact (erf) GELU that torch's nn.GELU()
# and transformers' 'gelu' compute; the tanh approximation goes by the three names transformers gives it.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    'gelu': lambda x: jax.nn.gelu(x, approximate=False),
    'gelu_new': lambda x: jax.nn.gelu(x, approximate=True),
    'gelu_pytorch_tanh': lambda x: jax.nn.gelu(x, approximate=True),
    'gelu_fast': lambda x: jax.nn.gelu(x, approximate=True),
    'quick_gelu': lambda x: x * jax.nn.sigmoid(1.702 * x),
    'relu': jax.nn.relu,
    'silu': jax.nn.silu,
    'swish': jax.nn.silu,
}


def activation(name: str, where: str) -> Callable[[jax.Array], jax.Array]:
    """The function ``ACTIVATIONS[name]``; a config's field ``where`` naming another is an error."""
    if name not in ACTIVATIONS:
        raise ValueError(f"{where} {name!r} is not one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def param(rngs: nnx.Rngs | None, init: Callable, shape: Sequence[int], axes: Axes, param_dtype: Dtype,
          kind: type[nnx.Param] = nnx.Param) -> nnx.Param:
    """A parameter of ``shape`` initialised by ``init`` and annotated with logical ``axes``."""
    if len(axes) != len(shape):
        raise ValueError(f"axes {axes} do not match parameter shape {tuple(shape)}")
    key = rngs.params() if rngs is not None else jax.random.key(0)
    return kind(init(key, tuple(shape), param_dtype), axes=tuple(axes))


class Dense(nnx.Module):
    """y = x @ kernel + bias, with an optional LoRA adapter.

    ``axes`` names the (in, out) dimensions of the kernel; the bias takes the out name. ``lora`` is a
    ``lora.LoRAConfig`` (or None): its ``adapter`` method builds the adapter, so that this module needs
    nothing from ``lora.py`` (which builds on this one).
    """

    def __init__(self, in_features: int, out_features: int, *, axes: Axes, use_bias: bool = True,
                 dtype: Dtype = jnp.float32, param_dtype: Dtype = jnp.float32,
                 kernel_init: Callable = default_kernel_init, lora=None, rngs: nnx.Rngs):
        self.in_features, self.out_features = in_features, out_features
        self.dtype = dtype
        self.kernel = param(rngs, kernel_init, (in_features, out_features), axes, param_dtype)
        self.bias = (param(rngs, nnx.initializers.zeros, (out_features,), (axes[1],), param_dtype)
                     if use_bias else None)
        self.lora = (lora.adapter(in_features, out_features, axes=axes, param_dtype=param_dtype, rngs=rngs)
                     if lora is not None and lora.rank > 0 else None)

    def __call__(self, x: jax.Array, *, dropout_rng: jax.Array | None = None) -> jax.Array:
        x = x.astype(self.dtype)
        y = jnp.einsum('...i,io->...o', x, self.kernel[...].astype(self.dtype))
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype)
        if self.lora is not None:
            y = y + self.lora(x, dropout_rng=dropout_rng).astype(self.dtype)
        return y


class LayerNorm(nnx.Module):
    """LayerNorm computed in float32 (as the PyTorch references do under autocast)."""

    def __init__(self, features: int, *, eps: float = 1e-5, use_bias: bool = True, axis_name: str = 'norm',
                 dtype: Dtype = jnp.float32, param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
        self.eps, self.dtype = eps, dtype
        self.scale = param(rngs, nnx.initializers.ones, (features,), (axis_name,), param_dtype)
        self.bias = (param(rngs, nnx.initializers.zeros, (features,), (axis_name,), param_dtype)
                     if use_bias else None)

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        mean = x32.mean(-1, keepdims=True)
        var = jnp.square(x32 - mean).mean(-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...].astype(jnp.float32)
        if self.bias is not None:
            y = y + self.bias[...].astype(jnp.float32)
        return y.astype(self.dtype)


class RMSNorm(nnx.Module):
    """LLaMA RMSNorm: normalise in float32, cast back, then scale (transformers' order)."""

    def __init__(self, features: int, *, eps: float = 1e-6, dtype: Dtype = jnp.float32,
                 param_dtype: Dtype = jnp.float32, rngs: nnx.Rngs):
        self.eps, self.dtype = eps, dtype
        self.scale = param(rngs, nnx.initializers.ones, (features,), ('norm',), param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.square(x32).mean(-1, keepdims=True) + self.eps)
        return self.scale[...].astype(self.dtype) * y.astype(self.dtype)


class Embed(nnx.Module):
    """Token embedding table of shape (num_embeddings, features)."""

    def __init__(self, num_embeddings: int, features: int, *, axes: Axes = ('vocab', 'embed'),
                 dtype: Dtype = jnp.float32, param_dtype: Dtype = jnp.float32,
                 init: Callable = default_kernel_init, rngs: nnx.Rngs):
        self.num_embeddings, self.features, self.dtype = num_embeddings, features, dtype
        self.embedding = param(rngs, init, (num_embeddings, features), axes, param_dtype)

    def __call__(self, ids: jax.Array) -> jax.Array:
        return jnp.take(self.embedding[...], ids, axis=0).astype(self.dtype)

    def attend(self, x: jax.Array) -> jax.Array:
        """Logits against the table (tied output head)."""
        return jnp.einsum('...d,vd->...v', x, self.embedding[...].astype(x.dtype))


def dropout(x: jax.Array, rate: float, rng: jax.Array | None) -> jax.Array:
    """Inverted dropout; a no-op when ``rng`` is None (evaluation) or ``rate`` is 0."""
    if rng is None or rate <= 0.0:
        return x
    keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def split_rng(rng: jax.Array | None, n: int) -> list[jax.Array | None]:
    """n independent keys from ``rng``, or n Nones when dropout is off."""
    if rng is None:
        return [None] * n
    return list(jax.random.split(rng, n))


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None = None, *,
              implementation: str | None = None) -> jax.Array:
    """Multi-head attention on (B, S, H, D) tensors; k/v may have fewer heads (GQA).

    ``mask`` is boolean, broadcastable to (B, H, Sq, Sk); True means "may attend". Softmax runs in
    float32. Query rows with no allowed key return zeros instead of an average of masked values.
    ``implementation`` is passed to ``jax.nn.dot_product_attention`` ('xla', 'cudnn' or None), except that
    None on a CPU backend takes :func:`_cpu_attention` (same result, a leaner backward pass).
    """
    if implementation not in (None, 'xla', 'cudnn', 'reference'):
        raise ValueError(f"unknown attention implementation {implementation!r}")
    if implementation == 'reference':
        out = _reference_attention(q, k, v, mask)
    elif implementation is None and jax.default_backend() == 'cpu':
        out = _cpu_attention(q, k, v, mask)
    else:
        out = jax.nn.dot_product_attention(q, k, v, mask=mask, implementation=implementation)
    if mask is not None:
        any_key = jnp.swapaxes(jnp.any(mask, axis=-1), 1, 2)  # (B|1, Sq|1, H|1)
        out = jnp.where(any_key[..., None], out, jnp.zeros_like(out))
    return out


def _cpu_attention(q, k, v, mask):
    """Softmax attention with a hand-written backward pass, for XLA:CPU.

    Why: differentiating ``jax.nn.dot_product_attention`` gives a backward pass that makes several more passes
    over the (B, H, Sq, Sk) scores, and XLA:CPU runs those passes far below memory speed. This backward
    pass takes the softmax's correction term from the (B, Sq, H, D) outputs, as flash attention does.
    """
    h, hk = q.shape[2], k.shape[2]
    if h != hk:  # GQA: each key/value head serves h // hk query heads (autodiff sums their gradients)
        k, v = jnp.repeat(k, h // hk, axis=2), jnp.repeat(v, h // hk, axis=2)
    bias = jnp.zeros((1, 1, 1, 1), jnp.float32)
    if mask is not None:
        bias = jnp.where(mask, 0.0, jnp.finfo(jnp.float32).min)
    return _softmax_attention(q / math.sqrt(q.shape[-1]), k, v, bias)


@jax.custom_vjp
def _softmax_attention(q, k, v, bias):
    """q (B, Sq, H, D), already scaled; k, v (B, Sk, H, D); ``bias`` broadcastable to (B, H, Sq, Sk)."""
    return _softmax_attention_fwd(q, k, v, bias)[0]


def _softmax_attention_fwd(q, k, v, bias):
    scores = jnp.einsum('bthd,bshd->bhts', q, k, preferred_element_type=jnp.float32) + bias
    probs = jax.nn.softmax(scores, axis=-1)
    out = jnp.einsum('bhts,bshd->bthd', probs.astype(v.dtype), v)
    return out, (q, k, v, probs, out)


def _softmax_attention_bwd(residuals, d_out):
    q, k, v, probs, out = residuals
    d_v = jnp.einsum('bhts,bthd->bshd', probs.astype(d_out.dtype), d_out)
    d_probs = jnp.einsum('bthd,bshd->bhts', d_out, v, preferred_element_type=jnp.float32)
    # sum_s probs * d_probs = sum_d out * d_out: one pass over the outputs instead of over the scores
    correction = jnp.einsum('bthd,bthd->bht', out, d_out, preferred_element_type=jnp.float32)
    d_scores = (probs * (d_probs - correction[..., None])).astype(q.dtype)
    d_q = jnp.einsum('bhts,bshd->bthd', d_scores, k)
    d_k = jnp.einsum('bhts,bthd->bshd', d_scores, q)
    return d_q, d_k, d_v, None  # the bias comes from a boolean mask: no gradient


_softmax_attention.defvjp(_softmax_attention_fwd, _softmax_attention_bwd)


def _reference_attention(q, k, v, mask):
    h, hk = q.shape[2], k.shape[2]
    if h != hk:
        k = jnp.repeat(k, h // hk, axis=2)
        v = jnp.repeat(v, h // hk, axis=2)
    logits = jnp.einsum('bqhd,bkhd->bhqk', q, k).astype(jnp.float32) / math.sqrt(q.shape[-1])
    if mask is not None:
        logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum('bhqk,bkhd->bqhd', probs, v)


def cache_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """:func:`attention` of new queries q (B, Sq, H, D) over a KV cache laid out (B, Hk, L, D), as a decoder
    stores it; same result.

    Why this layout: with (B, L, Hk, D) caches XLA:CPU copied a transposed key and value tensor of every
    layer on every decode step (it wants batch dims first for its batched dots), which cost more than the
    dots themselves. Stored head-major, both dots read the cache where it lies.
    """
    b, sq, h, d = q.shape
    hk = k.shape[1]
    g = h // hk
    q = q.reshape(b, sq, hk, g, d).transpose(0, 2, 1, 3, 4)  # (B, Hk, Sq, g, D): a few rows
    scores = jnp.einsum('bhsgd,bhld->bhsgl', q, k, preferred_element_type=jnp.float32) / math.sqrt(d)
    if mask is not None:
        mask = jnp.asarray(mask, bool)
        mb, mh = mask.shape[:2]
        if mh == h:
            mask = mask.reshape(mb, hk, g, sq, -1).transpose(0, 1, 3, 2, 4)
        else:
            mask = mask.reshape(mb, 1, sq, 1, -1)
        scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum('bhsgl,bhld->bhsgd', probs, v)
    if mask is not None:  # a query with no allowed key gives zeros, as in attention()
        out = jnp.where(jnp.any(mask, axis=-1)[..., None], out, jnp.zeros_like(out))
    return out.transpose(0, 2, 1, 3, 4).reshape(b, sq, h, d)


def key_mask(valid: jax.Array) -> jax.Array:
    """(B, Sk) validity -> attention mask (B, 1, 1, Sk)."""
    return valid.astype(bool)[:, None, None, :]
