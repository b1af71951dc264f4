"""Text generation with a KV cache: greedy or sampled (temperature, top-k, top-p), for a LLaMA or MicroEmo.

    from microemo_jax.generate import generate
    tokens = generate(model, input_ids, attention_mask, max_new_tokens=64, eos_token_id=2)  # (B, 64) int32

``model`` is a :class:`~microemo_jax.models.llama.Llama` (what ``hf.load_llm`` returns: LLaMA, Qwen2, Qwen3) or a
:class:`~microemo_jax.models.microemo.MicroEmo`; then ``batch`` is the batch dict (``data/shapes.py``
``MODEL_INPUTS``: frames, faces, audio, utterances, modality_positions, ...) and the prompt embeddings are
``model.prompt_embeddings(batch)`` exactly as in training, with the attention mask it returns.

How it runs:

* Two compiled programs: the *prefill* (encoders when MicroEmo, the prompt through the LLM into a KV cache
  sized once for prompt + ``max_new_tokens``, the logits of each row's last attended token) and the
  *decode loop* (one ``lax.while_loop`` of single-token steps that samples, writes into the cache and
  stops early once every row has emitted ``eos_token_id``). No host round-trip per token.
* Prompt lengths are bucketed so that different prompts reuse the programs: the length is padded (on
  the right, masked) up to a power of two of at least 16, and beyond 1024 up to a multiple of 1024
  (:func:`bucket_length`). A program is compiled per (bucket, batch size, ``max_new_tokens``, model,
  sampling mode: greedy, or sampling with or without top-k and top-p filtering); the values of
  temperature, top-k and top-p, the end-of-sequence ids and the rng are runtime inputs.
* Padding is a mask, never a shift: positions count only attended tokens (``models/llama.py``) and the
  cache keeps a validity bit per slot, so left padding, right padding and padding in the middle all give
  what the unpadded row gives alone. Each row's first new token comes from its last attended position.
* After a row emits ``eos_token_id`` it keeps emitting it (the rest of its row is ``eos_token_id``).
* ``num_samples=G`` draws G answers per prompt (rows ``i * G + j``); the encoders and the prefill run once per
  prompt and the cache is repeated. ``return_logprobs`` adds each token's log-probability (GRPO's behaviour
  log-probabilities); ``sample_placed`` runs the programs on inputs already on the devices (stage 3).
* Greedy (``temperature == 0``) is the argmax, first index on ties (as transformers). Sampling scales
  the logits by ``1 / temperature``, keeps the ``top_k`` largest (0 = all; ties at the boundary stay),
  then the smallest set of most likely tokens whose probability reaches ``top_p`` (transformers' order
  and rules), and draws with ``jax.random.categorical``; the key of step ``i`` is
  ``fold_in(rng, i)``, so a given ``rng`` reproduces the same tokens (default ``jax.random.key(0)``).
* ``generate`` is a pure function of the model's state and the inputs: the model is ``nnx.split`` and the
  programs take (graphdef, state); nothing in the model changes.
* With ``mesh`` (and the config's ``sharding_rules`` as ``rules``) the inputs, cache and activations are
  sharded along the rules' 'batch' axes (rows replicated when the batch does not divide), the
  parameters stay where they are (shard them as training does, ``sharding.state_shardings``), and the
  tokens come back replicated.
"""
from __future__ import annotations

import contextlib
import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from microemo_jax.data.shapes import MODEL_INPUTS
from microemo_jax.models.llama import KVCache, Llama
from microemo_jax.sharding import activation_sharding, logical_to_spec

MIN_BUCKET = 16
LINEAR_BUCKETS_FROM = 1024
EOS_SLOTS = 8  # end-of-sequence ids are passed in an array of at least this size


def bucket_length(n: int) -> int:
    """Padded prompt length: the next power of two >= max(n, 16), or beyond 1024 the next multiple of 1024."""
    if n <= LINEAR_BUCKETS_FROM:
        return max(MIN_BUCKET, 1 << max(0, math.ceil(math.log2(max(n, 1)))))
    return -(-n // LINEAR_BUCKETS_FROM) * LINEAR_BUCKETS_FROM


def generate(model, input_ids=None, attention_mask=None, *, max_new_tokens: int, temperature: float = 0.0,
             top_p: float = 1.0, top_k: int = 0, eos_token_id: int | Sequence[int] | None = None, rng=None,
             batch: dict | None = None, mesh: Mesh | None = None, rules=None, num_samples: int = 1,
             return_logprobs: bool = False):
    """(B * num_samples, max_new_tokens) int32 tokens generated after each prompt (see the module docstring);
    with ``return_logprobs`` also their (B * num_samples, max_new_tokens) float32 log-probabilities.

    Args:
      model: a ``Llama`` or a ``MicroEmo``.
      input_ids: (B, S) int prompt ids; for MicroEmo defaults to ``batch['input_ids']``.
      attention_mask: (B, S), 1/True = token, 0/False = padding (anywhere); default all ones, or for
        MicroEmo ``batch['attention_mask']``.
      max_new_tokens: number of tokens to generate per row (>= 1).
      temperature: 0 = greedy; > 0 samples.
      top_p: nucleus sampling threshold in (0, 1]; 1 = off.
      top_k: keep the k most likely tokens; 0 = off.
      eos_token_id: an id, or several (a row stops at any of them and is then padded with the first).
      rng: a ``jax.random.key`` (or an int seed) for sampling (default ``jax.random.key(0)``).
      batch: the MicroEmo batch dict (frames, faces, audio, utterances, modality_positions, ...).
      mesh, rules: shard the batch over the mesh with the config's ``sharding_rules`` table.
      num_samples: answers per prompt; row ``i * num_samples + j`` is prompt i's j-th. The encoders and the
        prompt's prefill run once per prompt and the cache is repeated (sampling draws a different answer each).
      return_logprobs: also return each token's log-probability under softmax(logits / temperature), the
        whole vocabulary (before top-k/top-p; GRPO's behaviour log-probabilities), 0 after end-of-sequence.
    """
    is_llama = isinstance(model, Llama)
    llm = model if is_llama else getattr(model, 'llm', None)
    if not isinstance(llm, Llama) or not (is_llama or hasattr(model, 'prompt_embeddings')):
        raise TypeError(f"generate: model must be a Llama or a MicroEmo, got {type(model).__name__}")
    if is_llama and batch is not None:
        raise ValueError("generate: `batch` is for a MicroEmo model; a Llama takes input_ids/attention_mask only")
    if not is_llama:
        if batch is None:
            raise ValueError("generate: a MicroEmo needs `batch` (frames, faces, audio, utterances, "
                             "modality_positions, ...; see data/shapes.py MODEL_INPUTS)")
        input_ids = batch.get('input_ids') if input_ids is None else input_ids
        attention_mask = batch.get('attention_mask') if attention_mask is None else attention_mask
    if input_ids is None:
        raise ValueError("generate: input_ids (batch, seq) is required")
    ids = np.asarray(input_ids)
    if ids.ndim != 2 or ids.shape[1] == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"generate: input_ids must be non-empty integers of shape (batch, seq), got "
                         f"{ids.dtype} {ids.shape}")
    b, s = ids.shape
    mask = np.ones((b, s), bool) if attention_mask is None else np.asarray(attention_mask)
    if mask.shape != (b, s):
        raise ValueError(f"generate: attention_mask has shape {mask.shape}, input_ids {ids.shape}")
    mask = mask.astype(bool)
    if not mask.any(axis=1).all():
        rows = np.flatnonzero(~mask.any(axis=1)).tolist()
        raise ValueError(f"generate: rows {rows} have no attended token (attention_mask all 0)")
    vocab = llm.cfg.vocab_size
    if ((ids < 0) | (ids >= vocab))[mask].any():
        raise ValueError(f"generate: input_ids outside [0, {vocab}) at attended positions")
    max_new_tokens = int(max_new_tokens)
    if max_new_tokens < 1:
        raise ValueError(f"generate: max_new_tokens must be >= 1, got {max_new_tokens}")
    temperature, top_p, top_k = float(temperature), float(top_p), int(top_k)
    if not temperature >= 0.0:
        raise ValueError(f"generate: temperature must be >= 0 (0 = greedy), got {temperature}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"generate: top_p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise ValueError(f"generate: top_k must be >= 0 (0 = off), got {top_k}")
    eos = () if eos_token_id is None else tuple(int(e) for e in np.atleast_1d(eos_token_id))
    if any(not 0 <= e < vocab for e in eos):
        raise ValueError(f"generate: eos_token_id {eos_token_id} outside the vocabulary [0, {vocab})")
    if mesh is not None and rules is None:
        raise ValueError("generate: pass the config's sharding_rules as `rules` together with `mesh`")
    rules = None if rules is None else tuple((str(k), tuple(v) if isinstance(v, list) else v) for k, v in rules)
    num_samples = int(num_samples)
    if num_samples < 1:
        raise ValueError(f"generate: num_samples must be >= 1, got {num_samples}")

    # Pad the prompt to its bucket, on the right: masked slots change nothing, placeholders keep their index.
    sb = bucket_length(s)
    ids_p = np.zeros((b, sb), np.int32)
    ids_p[:, :s] = np.where(mask, ids, 0)
    mask_p = np.zeros((b, sb), bool)
    mask_p[:, :s] = mask
    inputs = {'input_ids': ids_p, 'attention_mask': mask_p}
    if not is_llama:
        for name, value in batch.items():
            if name in inputs or name not in MODEL_INPUTS:  # loss_mask, names and other extras stay out
                continue
            value = value if isinstance(value, jax.Array) else np.asarray(value)
            if value.dtype.kind in 'USO':  # names and other host-only metadata
                continue
            inputs[name] = value
    inputs = _place(inputs, mesh, rules)
    graphdef, state = nnx.split(model)
    try:
        return sample_placed(graphdef, state, inputs, max_new_tokens=max_new_tokens, temperature=temperature,
                             top_p=top_p, top_k=top_k, eos=eos, rng=rng, num_samples=num_samples,
                             return_logprobs=return_logprobs, mesh=mesh, rules=rules, vocab_size=vocab)
    except KeyError as e:
        if is_llama:
            raise
        raise ValueError(f"generate: the batch lacks {e} (see data/shapes.py MODEL_INPUTS)") from None


def sample_placed(graphdef, state, inputs: dict, *, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                  top_k: int = 0, eos: Sequence[int] = (), rng=None, num_samples: int = 1,
                  return_logprobs: bool = False, mesh: Mesh | None = None, rules=None, replicate: bool = True,
                  vocab_size: int | None = None):
    """``generate``'s programs on checked, placed ``inputs`` (input_ids, attention_mask, the MicroEmo batch);
    ``state``: the model's nnx state or a tuple of states ``nnx.merge`` joins (trained + frozen, not copied).
    ``replicate=False`` keeps the rows sharded over the batch axes (each process reads its own); ``rules``:
    hashable pairs. A ``top_k`` >= ``vocab_size`` compiles no filter."""
    sample = temperature > 0.0
    mode = (sample, sample and 0 < top_k < (vocab_size or top_k + 1), sample and top_p < 1.0)
    if rng is None or isinstance(rng, (int, np.integer)):
        rng = jax.random.key(0 if rng is None else int(rng))
    settings = (jnp.float32(temperature if sample else 1.0), jnp.int32(top_k), jnp.float32(top_p))
    # end-of-sequence ids are a runtime input of a fixed size (-1 never matches): no compile per id
    eos = tuple(eos)
    eos_ids = np.full(max(EOS_SLOTS, len(eos)), -1, np.int32)
    eos_ids[:len(eos)] = eos
    eos_ids = (jnp.asarray(eos_ids), jnp.int32(eos[0] if eos else 0))
    max_len = inputs['input_ids'].shape[1] + max_new_tokens
    cache, logits = _prefill(graphdef, state, inputs, max_len=max_len, mesh=mesh, rules=rules, repeat=num_samples)
    tokens, logps = _decode(graphdef, state, cache, logits, rng, settings, eos_ids, max_new_tokens=max_new_tokens,
                            mode=mode, mesh=mesh, rules=rules, replicate=replicate)
    return (tokens, logps) if return_logprobs else tokens


def _states(state) -> tuple:
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def _place(inputs: dict, mesh: Mesh | None, rules) -> dict:
    if mesh is None:
        return {k: jnp.asarray(v) for k, v in inputs.items()}
    out = {}
    for name, value in inputs.items():
        sharding = NamedSharding(mesh, _batch_spec(np.ndim(value), np.shape(value), mesh, rules))
        out[name] = jax.device_put(value, sharding)
    return out


def _batch_spec(ndim: int, shape, mesh, rules, axes=None) -> P:
    axes = axes or ('batch',) + (None,) * (ndim - 1)
    return logical_to_spec(axes, shape, rules, mesh)


def _constrain(x, axes, mesh, rules):
    if mesh is None:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, logical_to_spec(axes, x.shape, rules, mesh)))


def _constrain_cache(cache: KVCache, mesh, rules) -> KVCache:
    if mesh is None:
        return cache
    kv_axes = ('layers', 'batch', 'kv_heads', None, None)
    return KVCache(k=_constrain(cache.k, kv_axes, mesh, rules), v=_constrain(cache.v, kv_axes, mesh, rules),
                   valid=_constrain(cache.valid, ('batch', None), mesh, rules), length=cache.length)


def _sharded(mesh, rules):
    """Pin activations to the batch axes while tracing (as the train step does); nothing without a mesh."""
    return activation_sharding(mesh, rules) if mesh is not None else contextlib.nullcontext()


def _llm(model) -> Llama:
    return model if isinstance(model, Llama) else model.llm


@functools.partial(jax.jit, static_argnames=('max_len', 'mesh', 'rules', 'repeat'))
def _prefill(graphdef, state, inputs, *, max_len, mesh, rules, repeat=1):
    """The prompt into a fresh cache of ``max_len`` slots; the logits (B, vocab) after each row's last token.
    ``repeat`` > 1: each row's cache and logits repeated that many times (rows i * repeat + j), for sampling
    several answers of one prompt that was encoded and prefilled once."""
    model = nnx.merge(graphdef, *_states(state))
    llm = _llm(model)
    ctx = _sharded(mesh, rules)
    with ctx:
        if model is llm:
            embeds = llm.embed(inputs['input_ids'])
            mask = inputs['attention_mask']
        else:
            embeds, mask = model.prompt_embeddings(inputs)
        b, s = mask.shape
        last = s - 1 - jnp.argmax(mask[:, ::-1], axis=1)  # each row's last attended slot
        cache = _constrain_cache(llm.init_cache(b, max_len), mesh, rules)
        logits, cache = llm(inputs_embeds=embeds, attention_mask=mask, cache=cache, logits_at=last)
    logits = logits[:, 0]
    if repeat > 1:
        cache = KVCache(k=jnp.repeat(cache.k, repeat, axis=1), v=jnp.repeat(cache.v, repeat, axis=1),
                        valid=jnp.repeat(cache.valid, repeat, axis=0), length=cache.length)
        logits = jnp.repeat(logits, repeat, axis=0)
    return _constrain_cache(cache, mesh, rules), logits


@functools.partial(jax.jit, static_argnames=('max_new_tokens', 'mode', 'mesh', 'rules', 'replicate'))
def _decode(graphdef, state, cache, logits, key, settings, eos, *, max_new_tokens, mode, mesh, rules,
            replicate=True):
    """Sample the first token from the prefill logits, then ``max_new_tokens - 1`` cached single-token steps.
    Returns the tokens and their log-probabilities (0 after a row's end; XLA drops them when unused)."""
    llm = _llm(nnx.merge(graphdef, *_states(state)))
    b = logits.shape[0]
    eos_ids, pad = eos

    def pick(logits, i, done):
        tok = _sample(logits, jax.random.fold_in(key, i), settings, mode)
        tok = jnp.where(done, pad, tok)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32) / settings[0], axis=-1)
        logp = jnp.where(done, 0.0, jnp.take_along_axis(logp, tok[:, None], axis=-1)[:, 0])
        return tok, logp, done | (tok[:, None] == eos_ids[None, :]).any(-1)

    out = jnp.full((b, max_new_tokens), pad, jnp.int32)
    logps = jnp.zeros((b, max_new_tokens), jnp.float32)
    tok, logp, done = pick(logits, 0, jnp.zeros((b,), bool))
    out = out.at[:, 0].set(tok)
    logps = logps.at[:, 0].set(logp)

    def cond(carry):
        i, _, _, _, _, done = carry
        return (i < max_new_tokens) & ~jnp.all(done)

    # An unrolled layer stack carries one buffer per layer through the loop: the stack/slice pairs around the
    # call then cancel out and each layer's keys and values are updated in place, not copied every step.
    per_layer = not llm.layers.scan

    def body(carry):
        i, tok, cache, out, logps, done = carry
        if per_layer:
            cache = KVCache(k=jnp.stack(cache.k), v=jnp.stack(cache.v), valid=cache.valid, length=cache.length)
        with _sharded(mesh, rules):
            logits, cache = llm(tok[:, None], attention_mask=jnp.ones((b, 1), bool), cache=cache)
        tok, logp, done = pick(logits[:, 0], i, done)
        out = jax.lax.dynamic_update_slice(out, tok[:, None], (0, i))
        logps = jax.lax.dynamic_update_slice(logps, logp[:, None], (0, i))
        cache = _constrain_cache(cache, mesh, rules)
        if per_layer:
            cache = _unstack(cache)
        return i + 1, tok, cache, out, logps, done

    carry = (jnp.int32(1), tok, _unstack(cache) if per_layer else cache, out, logps, done)
    _, _, _, out, logps, _ = jax.lax.while_loop(cond, body, carry)
    if mesh is None:
        return out, logps
    axes = (None, None) if replicate else ('batch', None)
    return _constrain(out, axes, mesh, rules), _constrain(logps, axes, mesh, rules)


def _unstack(cache: KVCache) -> KVCache:
    return KVCache(k=tuple(cache.k), v=tuple(cache.v), valid=cache.valid, length=cache.length)


def _argmax(logits: jax.Array) -> jax.Array:
    """First index of the maximum, as ``jnp.argmax``, from two plain reductions (XLA:CPU's variadic argmax
    reduction costs more than a decode step's attention at a 32k vocabulary). A row without a maximum
    (NaN) gives 0."""
    vocab = logits.shape[-1]
    best = logits.max(axis=-1, keepdims=True)
    first = jnp.where(logits == best, jnp.arange(vocab, dtype=jnp.int32), vocab).min(axis=-1)
    return jnp.where(first < vocab, first, 0).astype(jnp.int32)


def _sample(logits: jax.Array, key, settings, mode) -> jax.Array:
    """(B, vocab) float32 logits -> (B,) int32 tokens: argmax, or a draw after temperature/top-k/top-p."""
    sample, use_top_k, use_top_p = mode
    if not sample:
        return _argmax(logits)
    temperature, top_k, top_p = settings
    logits = logits / temperature
    neg = jnp.finfo(logits.dtype).min
    if use_top_k or use_top_p:
        ordered = -jnp.sort(-logits, axis=-1)  # descending
        vocab = logits.shape[-1]
        keep_sorted = jnp.ones(ordered.shape, bool)
        if use_top_k:
            keep_sorted &= jnp.arange(vocab) < top_k
        if use_top_p:
            probs = jax.nn.softmax(jnp.where(keep_sorted, ordered, -jnp.inf), axis=-1)
            before = jnp.cumsum(probs, axis=-1) - probs  # probability mass of the more likely tokens
            keep_sorted &= before < top_p
        keep_sorted = keep_sorted.at[:, 0].set(True)
        n_keep = keep_sorted.sum(axis=-1)  # a prefix of the descending order
        threshold = jnp.take_along_axis(ordered, (n_keep - 1)[:, None], axis=-1)
        logits = jnp.where(logits >= threshold, logits, neg)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)

