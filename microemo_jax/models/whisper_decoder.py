"""Whisper text decoder (transformers' ``WhisperDecoder`` + ``proj_out`` layout) and greedy timestamped decoding.

The decoder: token embeddings plus a learned position table (``scale_embedding`` is kept from config.json
but not used: transformers defines the scale and never applies it), pre-LN layers of causal self-attention,
cross-attention over the encoder output and a GELU MLP (k_proj without bias, as in the encoder), a final
LayerNorm, and logits from the tied embedding table
(or ``proj_out`` when the checkpoint unties it). ``WhisperSpeechModel`` holds the encoder
(``models/whisper.py``) and this decoder, as ``WhisperForConditionalGeneration`` does.

Decoding (``greedy_generate``, ``transcribe``) reproduces transformers' ``WhisperForConditionalGeneration
.generate(input_features, return_timestamps=True)`` with greedy search, for inputs of one window
(``2 * max_source_positions`` mel frames, 30 s at full size):

* the decoder prompt is ``<|startoftranscript|>``, the language (given, or detected as transformers does:
  the most likely language token after the start token) and the task (default transcribe);
* each step's logits go through, in transformers' order, ``begin_suppress_tokens`` (first step only),
  ``suppress_tokens`` and ``WhisperTimeStampLogitsProcessor``: ``<|notimestamps|>`` never; timestamps
  come in pairs (after two timestamps text must follow; after text then one timestamp, only a timestamp
  or eos); timestamps never decrease (and after a pair, the next one is later); the first token is a
  timestamp of at most ``max_initial_timestamp_index``; and when the probability mass of all timestamps
  beats the most likely text token, a timestamp is chosen;
* ``transcribe`` then cuts the tokens into segments at timestamp pairs and, while a pass ends inside a
  segment (a pair last, not a single timestamp), decodes the rest of the window again from the last
  pair's time (zero-padded features), as transformers' generate does; times are ``(token - timestamp_begin)
  * 0.02`` s plus the pass's offset.

Why not ``microemo_jax.generate``: that loop is written around the LLaMA ``KVCache`` and calls the LLM
with prompt embeddings; Whisper needs a second, cross-attention cache computed once from the encoder
output, a learned-position decoder, and a per-step logits processor whose state (the last two tokens and
the last timestamp of each row) lives in the loop. Its shape is the same: one compiled prefill and one
compiled ``lax.while_loop`` of cached single-token steps that stops once every row has emitted eos.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from microemo_jax.models.layers import Dense, Embed, LayerNorm, attention, param
from microemo_jax.models.stack import LayerStack
from microemo_jax.models.whisper import ACTIVATIONS, WhisperEncoder, WhisperEncoderConfig

TIME_PRECISION = 0.02   # seconds per timestamp token (two 10 ms mel frames per encoder position)
INPUT_STRIDE = 2        # mel frames per encoder position
FEATURE_PRECISION = 0.01  # seconds per mel frame


@dataclasses.dataclass(frozen=True)
class WhisperDecoderConfig:
    """Decoder part of a HF ``WhisperConfig``."""
    vocab_size: int = 51865
    d_model: int = 384
    decoder_layers: int = 4
    decoder_attention_heads: int = 6
    decoder_ffn_dim: int = 1536
    max_target_positions: int = 448
    activation_function: str = 'gelu'
    scale_embedding: bool = False
    tie_word_embeddings: bool = True
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        if self.d_model % self.decoder_attention_heads:
            raise ValueError(f"WhisperDecoderConfig: d_model {self.d_model} is not divisible by "
                             f"decoder_attention_heads {self.decoder_attention_heads}")
        if self.activation_function not in ACTIVATIONS:
            raise ValueError(f"WhisperDecoderConfig: activation_function {self.activation_function!r} is not one "
                             f"of {sorted(ACTIVATIONS)}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.decoder_attention_heads


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=['self_k', 'self_v', 'cross_k', 'cross_v', 'length'], meta_fields=[])
@dataclasses.dataclass
class DecoderCache:
    """Self-attention keys/values (layers, B, max_len, heads, head_dim), the cross-attention keys/values
    of the encoder output (layers, B, T_enc, heads, head_dim), and ``length``, the next slot to write."""
    self_k: jax.Array
    self_v: jax.Array
    cross_k: jax.Array
    cross_v: jax.Array
    length: jax.Array

    @property
    def max_len(self) -> int:
        return self.self_k.shape[2]


class _Attention(nnx.Module):
    def __init__(self, cfg: WhisperDecoderConfig, *, dtype, param_dtype, attention_impl, rngs):
        d = cfg.d_model
        self.num_heads, self.head_dim, self.attention_impl = cfg.decoder_attention_heads, cfg.head_dim, attention_impl
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.q_proj = Dense(d, d, axes=('embed', 'heads'), **kw)
        self.k_proj = Dense(d, d, axes=('embed', 'kv_heads'), use_bias=False, **kw)
        self.v_proj = Dense(d, d, axes=('embed', 'kv_heads'), **kw)
        self.out_proj = Dense(d, d, axes=('heads', 'embed'), **kw)

    def heads(self, y):
        return y.reshape(*y.shape[:2], self.num_heads, self.head_dim)

    def kv(self, x):
        return self.heads(self.k_proj(x)), self.heads(self.v_proj(x))

    def __call__(self, x, k, v, mask):
        out = attention(self.heads(self.q_proj(x)), k.astype(x.dtype), v.astype(x.dtype), mask,
                        implementation=self.attention_impl)
        return self.out_proj(out.reshape(*x.shape[:2], -1))


class WhisperDecoderLayer(nnx.Module):
    """x + self_attn(LN(x)); x + encoder_attn(LN(x), encoder); x + fc2(act(fc1(LN(x)))).

    ``xs`` = (self_k, self_v, cross_k, cross_v) of this layer, or None without a cache; returns the
    updated tuple (the cross keys/values computed from ``encoder_hidden_states`` when it is given)."""

    def __init__(self, cfg: WhisperDecoderConfig, *, dtype, param_dtype, attention_impl, rngs: nnx.Rngs):
        self.cfg = cfg
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        ln = lambda: LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, **kw)
        self.self_attn_layer_norm = ln()
        self.self_attn = _Attention(cfg, attention_impl=attention_impl, **kw)
        self.encoder_attn_layer_norm = ln()
        self.encoder_attn = _Attention(cfg, attention_impl=attention_impl, **kw)
        self.final_layer_norm = ln()
        self.fc1 = Dense(cfg.d_model, cfg.decoder_ffn_dim, axes=('embed', 'mlp'), **kw)
        self.fc2 = Dense(cfg.decoder_ffn_dim, cfg.d_model, axes=('mlp', 'embed'), **kw)

    def __call__(self, x, xs, *, mask, cache_index, encoder_hidden_states):
        h = self.self_attn_layer_norm(x)
        k, v = self.self_attn.kv(h)
        if xs is not None:
            sk, sv, ck, cv = xs
            k = jax.lax.dynamic_update_slice(sk, k.astype(sk.dtype), (0, cache_index, 0, 0))
            v = jax.lax.dynamic_update_slice(sv, v.astype(sv.dtype), (0, cache_index, 0, 0))
        x = x + self.self_attn(h, k, v, mask)
        if encoder_hidden_states is not None:
            ck, cv = self.encoder_attn.kv(encoder_hidden_states)
            if xs is not None:
                ck, cv = ck.astype(xs[2].dtype), cv.astype(xs[3].dtype)
        x = x + self.encoder_attn(self.encoder_attn_layer_norm(x), ck, cv, None)
        h = ACTIVATIONS[self.cfg.activation_function](self.fc1(self.final_layer_norm(x)))
        x = x + self.fc2(h)
        return x, (None if xs is None else (k, v, ck, cv))


class WhisperDecoder(nnx.Module):
    """Token ids (B, S) + encoder output (B, T_enc, d) -> float32 logits (B, S, vocab) (and the updated cache)."""

    def __init__(self, cfg: WhisperDecoderConfig, *, dtype=jnp.float32, param_dtype=jnp.float32, scan: bool = False,
                 remat_policy: str = 'none', attention_impl: str | None = None, rngs: nnx.Rngs):
        self.cfg, self.dtype = cfg, dtype
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.embed_tokens = Embed(cfg.vocab_size, cfg.d_model, axes=('vocab', 'embed'), **kw)
        self.embed_positions = param(rngs, nnx.initializers.normal(0.02), (cfg.max_target_positions, cfg.d_model),
                                     ('pos', 'embed'), param_dtype)
        self.layers = LayerStack(
            lambda r: WhisperDecoderLayer(cfg, dtype=dtype, param_dtype=param_dtype, attention_impl=attention_impl,
                                          rngs=r),
            cfg.decoder_layers, scan=scan, remat_policy=remat_policy, rngs=rngs)
        self.layer_norm = LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, **kw)
        self.proj_out = None if cfg.tie_word_embeddings else Dense(
            cfg.d_model, cfg.vocab_size, axes=('embed', 'vocab'), use_bias=False, **kw)

    def init_cache(self, batch: int, max_len: int, encoder_len: int, dtype=None) -> DecoderCache:
        c = self.cfg
        if max_len > c.max_target_positions:
            raise ValueError(f"WhisperDecoder: a cache of {max_len} tokens exceeds max_target_positions="
                             f"{c.max_target_positions}")
        dtype = dtype or self.dtype
        z = lambda n: jnp.zeros((c.decoder_layers, batch, n, c.decoder_attention_heads, c.head_dim), dtype)
        return DecoderCache(z(max_len), z(max_len), z(encoder_len), z(encoder_len), jnp.zeros((), jnp.int32))

    def __call__(self, input_ids: jax.Array, encoder_hidden_states: jax.Array | None = None, *,
                 cache: DecoderCache | None = None, logits_at: jax.Array | None = None):
        """Without ``cache``: teacher-forced logits over the whole sequence (``encoder_hidden_states`` needed).
        With ``cache``: the tokens are written at ``cache.length``; ``encoder_hidden_states`` given (the
        prefill) fills the cross-attention cache, else the cached one is used. ``logits_at`` (B,) picks
        one position per row (the head is the largest matmul). Returns logits, or (logits, cache)."""
        if input_ids.ndim != 2 or not jnp.issubdtype(input_ids.dtype, jnp.integer):
            raise ValueError(f"WhisperDecoder: input_ids must be integers of shape (batch, seq), got "
                             f"{input_ids.dtype} {tuple(input_ids.shape)}")
        if cache is None and encoder_hidden_states is None:
            raise ValueError("WhisperDecoder: encoder_hidden_states is needed without a cache")
        c = self.cfg
        b, s = input_ids.shape
        start = jnp.int32(0) if cache is None else cache.length
        if cache is None and s > c.max_target_positions:
            raise ValueError(f"WhisperDecoder: {s} tokens exceed max_target_positions={c.max_target_positions}")
        positions = start + jnp.arange(s)
        x = self.embed_tokens(input_ids)  # no sqrt(d_model) scale even with scale_embedding (transformers' behaviour)
        x = x + jnp.take(self.embed_positions[...], positions, axis=0).astype(self.dtype)[None]
        if cache is None:
            mask, xs = jnp.tril(jnp.ones((s, s), bool))[None, None], None
        else:
            keys = jnp.arange(cache.max_len)
            mask = (keys[None, :] <= positions[:, None])[None, None]
            xs = (cache.self_k, cache.self_v, cache.cross_k, cache.cross_v)
        enc = None if encoder_hidden_states is None else encoder_hidden_states.astype(self.dtype)
        x, new = self.layers(x, xs, mask=mask, cache_index=start, encoder_hidden_states=enc)
        if logits_at is not None:
            x = jnp.take_along_axis(x, jnp.asarray(logits_at, jnp.int32).reshape(b, 1, 1), axis=1)
        x = self.layer_norm(x)
        logits = (self.embed_tokens.attend(x) if self.proj_out is None else self.proj_out(x)).astype(jnp.float32)
        if cache is None:
            return logits
        return logits, DecoderCache(*new, length=start + s)


class WhisperSpeechModel(nnx.Module):
    """``WhisperForConditionalGeneration``: the encoder and the decoder."""

    def __init__(self, encoder_cfg: WhisperEncoderConfig, decoder_cfg: WhisperDecoderConfig, *, dtype=jnp.float32,
                 param_dtype=jnp.float32, scan: bool = False, attention_impl: str | None = None, rngs: nnx.Rngs):
        if encoder_cfg.d_model != decoder_cfg.d_model:
            raise ValueError(f"Whisper: encoder d_model {encoder_cfg.d_model} != decoder d_model {decoder_cfg.d_model}")
        kw = dict(dtype=dtype, param_dtype=param_dtype, scan=scan, attention_impl=attention_impl, rngs=rngs)
        self.encoder = WhisperEncoder(encoder_cfg, **kw)
        self.decoder = WhisperDecoder(decoder_cfg, **kw)

    @property
    def window_frames(self) -> int:
        """Mel frames of one input window (3000 = 30 s for the released checkpoints)."""
        return self.encoder.cfg.max_mel_frames

    def __call__(self, input_features: jax.Array, decoder_input_ids: jax.Array) -> jax.Array:
        return self.decoder(decoder_input_ids, self.encoder(input_features))


# ------------------------------------------------------------------------------------------------ decoding

@dataclasses.dataclass(frozen=True)
class WhisperGenerationConfig:
    """What timestamped decoding needs from a checkpoint's generation_config.json (hashable: a jit key)."""
    decoder_start_token_id: int
    eos_token_id: int
    no_timestamps_token_id: int
    pad_token_id: int | None = None
    lang_to_id: tuple[tuple[str, int], ...] = ()
    task_to_id: tuple[tuple[str, int], ...] = ()
    is_multilingual: bool = False
    forced_decoder_ids: tuple[tuple[int, int | None], ...] = ()
    suppress_tokens: tuple[int, ...] = ()
    begin_suppress_tokens: tuple[int, ...] = ()
    max_initial_timestamp_index: int | None = None

    @property
    def timestamp_begin(self) -> int:
        return self.no_timestamps_token_id + 1

    @property
    def pad(self) -> int:
        return self.eos_token_id if self.pad_token_id is None else self.pad_token_id

    @classmethod
    def from_dict(cls, d: dict, *, where: str = 'generation_config.json') -> 'WhisperGenerationConfig':
        missing = [k for k in ('decoder_start_token_id', 'eos_token_id', 'no_timestamps_token_id') if d.get(k) is None]
        if missing:
            raise ValueError(f"{where}: {', '.join(missing)} missing; timestamped Whisper decoding needs them "
                             f"(the openai/whisper-* checkpoints ship a generation_config.json with them)")
        eos = d['eos_token_id']
        eos = eos[0] if isinstance(eos, (list, tuple)) else eos
        ints = lambda key: tuple(int(t) for t in (d.get(key) or ()))
        return cls(
            decoder_start_token_id=int(d['decoder_start_token_id']), eos_token_id=int(eos),
            no_timestamps_token_id=int(d['no_timestamps_token_id']),
            pad_token_id=None if d.get('pad_token_id') is None else int(d['pad_token_id']),
            lang_to_id=tuple(sorted((str(k), int(v)) for k, v in (d.get('lang_to_id') or {}).items())),
            task_to_id=tuple(sorted((str(k), int(v)) for k, v in (d.get('task_to_id') or {}).items())),
            is_multilingual=bool(d.get('is_multilingual', bool(d.get('lang_to_id')))),
            forced_decoder_ids=tuple((int(i), None if t is None else int(t)) for i, t in (d.get('forced_decoder_ids')
                                                                                         or ())),
            suppress_tokens=ints('suppress_tokens'), begin_suppress_tokens=ints('begin_suppress_tokens'),
            max_initial_timestamp_index=(None if d.get('max_initial_timestamp_index') is None
                                         else int(d['max_initial_timestamp_index'])))

    def language_id(self, language: str) -> int:
        table = dict(self.lang_to_id)
        for key in (language, f'<|{language.lower()}|>'):
            if key in table:
                return table[key]
        raise ValueError(f"Whisper: language {language!r} is not in this checkpoint's lang_to_id "
                         f"({', '.join(k.strip('<|>') for k in sorted(table)) or 'none: an English-only model'})")


def process_logits(logits: jax.Array, step: jax.Array, prev1: jax.Array, prev2: jax.Array, last_ts: jax.Array,
                   g: WhisperGenerationConfig) -> jax.Array:
    """transformers' begin-suppress, suppress and ``WhisperTimeStampLogitsProcessor`` on (B, vocab) logits.

    ``step`` counts generated tokens (0 at the first); ``prev1``/``prev2`` (B,) are the last two generated
    tokens (-1 when there are none) and ``last_ts`` (B,) the last generated timestamp token (-1 if none)."""
    vocab = logits.shape[-1]
    ids = jnp.arange(vocab)
    neg = -jnp.inf
    s = logits
    if g.begin_suppress_tokens:
        s = jnp.where((step == 0) & jnp.isin(ids, jnp.asarray(g.begin_suppress_tokens)), neg, s)
    if g.suppress_tokens:
        s = jnp.where(jnp.isin(ids, jnp.asarray(g.suppress_tokens)), neg, s)
    ts0, eos = g.timestamp_begin, g.eos_token_id
    s = s.at[:, g.no_timestamps_token_id].set(neg)
    last_was = (step >= 1) & (prev1 >= ts0)
    penult_was = (step < 2) | (prev2 >= ts0)
    is_ts = ids[None, :] >= ts0
    s = jnp.where((last_was & penult_was)[:, None] & is_ts, neg, s)
    s = jnp.where((last_was & ~penult_was)[:, None] & (ids[None, :] < eos), neg, s)
    have = last_ts >= 0
    floor = jnp.where(have, jnp.where(last_was & ~penult_was, last_ts, last_ts + 1), ts0)
    s = jnp.where(is_ts & (ids[None, :] < floor[:, None]), neg, s)
    first = step == 0
    s = jnp.where(first & ~is_ts, neg, s)
    if g.max_initial_timestamp_index is not None:
        s = jnp.where(first & (ids[None, :] > ts0 + g.max_initial_timestamp_index), neg, s)
    logprobs = jax.nn.log_softmax(s, axis=-1)
    ts_mass = jax.nn.logsumexp(jnp.where(is_ts, logprobs, neg), axis=-1)
    best_text = jnp.max(jnp.where(is_ts, neg, logprobs), axis=-1)
    return jnp.where((ts_mass > best_text)[:, None] & ~is_ts, neg, s)


@functools.partial(jax.jit, static_argnames=('max_new_tokens', 'gen'))
def _greedy(graphdef, state, features, prompt, *, max_new_tokens: int, gen: WhisperGenerationConfig):
    """Encoder + prefill + a while_loop of cached single-token greedy steps: (B, max_new_tokens) tokens."""
    model = nnx.merge(graphdef, state)
    enc = model.encoder(features)
    b, p = prompt.shape
    cache = model.decoder.init_cache(b, p + max_new_tokens, enc.shape[1])
    logits, cache = model.decoder(prompt, enc, cache=cache, logits_at=jnp.full((b,), p - 1))
    eos, pad, ts0 = gen.eos_token_id, gen.pad, gen.timestamp_begin
    minus = jnp.full((b,), -1, jnp.int32)

    def pick(logits, i, prev1, prev2, last_ts, done):
        tok = jnp.argmax(process_logits(logits, i, prev1, prev2, last_ts, gen), axis=-1).astype(jnp.int32)
        tok = jnp.where(done, pad, tok)
        last_ts = jnp.where(~done & (tok >= ts0), tok, last_ts)
        return tok, last_ts, done | (tok == eos)

    def cond(carry):
        i, *_, done = carry
        return (i < max_new_tokens) & ~jnp.all(done)

    def body(carry):
        i, logits, cache, out, prev1, prev2, last_ts, done = carry
        tok, last_ts, done = pick(logits[:, 0], i, prev1, prev2, last_ts, done)
        out = jax.lax.dynamic_update_slice(out, tok[:, None], (0, i))
        logits, cache = model.decoder(tok[:, None], cache=cache)
        return i + 1, logits, cache, out, tok, prev1, last_ts, done

    out = jnp.full((b, max_new_tokens), pad, jnp.int32)
    carry = (jnp.int32(0), logits, cache, out, minus, minus, minus, jnp.zeros((b,), bool))
    return jax.lax.while_loop(cond, body, carry)[3]


@jax.jit
def _first_logits(graphdef, state, features, prompt):
    model = nnx.merge(graphdef, state)
    return model(features, prompt)[:, -1]


def detect_language(model: WhisperSpeechModel, features, gen: WhisperGenerationConfig) -> np.ndarray:
    """(B,) language token ids: the most likely language token after ``<|startoftranscript|>`` (transformers)."""
    if not gen.lang_to_id:
        raise ValueError("Whisper: this checkpoint has no lang_to_id (an English-only model): pass no language")
    graphdef, state = nnx.split(model)
    b = features.shape[0]
    logits = np.asarray(_first_logits(graphdef, state, jnp.asarray(features, jnp.float32),
                                      jnp.full((b, 1), gen.decoder_start_token_id, jnp.int32)))
    lang = np.asarray(sorted(v for _, v in gen.lang_to_id))
    return lang[np.argmax(logits[:, lang], axis=-1)]


def decoder_prompt(model: WhisperSpeechModel, features, gen: WhisperGenerationConfig, *, language: str | None = None,
                   task: str | None = 'transcribe') -> np.ndarray:
    """(B, P) prompt ids: start, language (given or detected; none for English-only models), task."""
    b = features.shape[0]
    forced = dict(gen.forced_decoder_ids)
    if not gen.is_multilingual and not gen.lang_to_id:
        if language not in (None, 'en', 'english'):
            raise ValueError(f"Whisper: an English-only checkpoint cannot transcribe language {language!r}")
        tail = [t for i, t in sorted(forced.items()) if t is not None and t != gen.no_timestamps_token_id]
        return np.asarray([[gen.decoder_start_token_id] + tail] * b, np.int32)
    langs = (np.full((b,), gen.language_id(language)) if language is not None
             else detect_language(model, features, gen))
    tasks = dict(gen.task_to_id)
    if task is None:
        task_id = forced.get(2) if forced.get(2) in tasks.values() else tasks.get('transcribe')
    elif task in tasks:
        task_id = tasks[task]
    else:
        raise ValueError(f"Whisper: task {task!r} is not one of {sorted(tasks)}")
    rows = [[gen.decoder_start_token_id, int(l)] + ([task_id] if task_id is not None else []) for l in langs]
    return np.asarray(rows, np.int32)


def greedy_generate(model: WhisperSpeechModel, features, prompt, gen: WhisperGenerationConfig, *,
                    max_new_tokens: int | None = None) -> np.ndarray:
    """One greedy timestamped pass over (B, bins, window) features: (B, max_new_tokens) new tokens, the rows
    that stopped padded with the pad id (transformers' ``force_unique_generate_call`` sequences, less the prompt)."""
    features = np.asarray(features, np.float32)
    prompt = np.asarray(prompt, np.int32)
    if features.ndim != 3 or features.shape[2] != model.window_frames:
        raise ValueError(f"Whisper: features must be (batch, {model.encoder.cfg.num_mel_bins}, {model.window_frames}) "
                         f"(one whole window), got {features.shape}")
    room = model.decoder.cfg.max_target_positions - prompt.shape[1]
    max_new_tokens = room if max_new_tokens is None else int(max_new_tokens)
    if not 1 <= max_new_tokens <= room:
        raise ValueError(f"Whisper: max_new_tokens must be in 1..{room} (max_target_positions="
                         f"{model.decoder.cfg.max_target_positions} less the {prompt.shape[1]}-token prompt), "
                         f"got {max_new_tokens}")
    graphdef, state = nnx.split(model)
    return np.asarray(_greedy(graphdef, state, jnp.asarray(features), jnp.asarray(prompt),
                              max_new_tokens=max_new_tokens, gen=gen))


@dataclasses.dataclass(frozen=True)
class Segment:
    start: float          # seconds from the start of the features
    end: float
    tokens: tuple[int, ...]


def split_segments(tokens: Sequence[int], gen: WhisperGenerationConfig, *, seek: int, num_frames: int):
    """transformers' ``_retrieve_segment`` for one pass from mel frame ``seek`` over ``num_frames`` frames:
    (segments, mel frames to advance, or None when the window is done).

    ``tokens`` are the pass's generated tokens without padding and without the final eos."""
    ts0 = gen.timestamp_begin
    offset = seek * TIME_PRECISION / INPUT_STRIDE
    tokens = list(tokens)
    is_ts = [t >= ts0 for t in tokens]
    single_ending = is_ts[-2:] == [False, True]
    cuts = [i + 1 for i in range(len(tokens) - 1) if is_ts[i] and is_ts[i + 1]]
    if not cuts:
        stamps = [t for t in tokens if t >= ts0]
        end = (stamps[-1] - ts0 if stamps and stamps[-1] != ts0
               else int(num_frames * FEATURE_PRECISION / TIME_PRECISION))
        return [Segment(offset, offset + end * TIME_PRECISION, tuple(tokens))], None
    if single_ending:
        cuts.append(len(tokens))
    else:
        cuts[-1] += 1
    segments, last = [], 0
    for k, cut in enumerate(cuts):
        piece = tokens[last:cut]
        end_at = -1 if k < len(cuts) - 1 or single_ending else -2
        segments.append(Segment(offset + (piece[0] - ts0) * TIME_PRECISION,
                                offset + (piece[end_at] - ts0) * TIME_PRECISION, tuple(piece)))
        last = cut
    if single_ending:
        return segments, None
    return segments, (tokens[last - 2] - ts0) * INPUT_STRIDE


def transcribe(model: WhisperSpeechModel, features, gen: WhisperGenerationConfig, *, language: str | None = None,
               task: str | None = 'transcribe', max_new_tokens: int | None = None, num_rows: int | None = None,
               max_passes: int = 16) -> list[list[Segment]]:
    """Timestamped segments of each row of (B, bins, window) features, as transformers' short-form
    ``generate(return_timestamps=True)`` finds them (see the module docstring). Rows from ``num_rows`` on
    are batch padding (a fixed batch keeps one compiled program): they are not decoded again and get []."""
    features = np.asarray(features, np.float32)
    window = model.window_frames
    b = features.shape[0]
    prompt = decoder_prompt(model, features, gen, language=language, task=task)
    seek = np.zeros(b, np.int64)                 # mel frames already transcribed, per row
    seek[b if num_rows is None else num_rows:] = window
    out: list[list[Segment]] = [[] for _ in range(b)]
    for _ in range(max_passes):
        rows = np.flatnonzero(seek < window)
        if not len(rows):
            break
        # Rows that are done stay in the batch as zeros (one compiled program for every pass); their
        # tokens are ignored. The others get the rest of their window, zero-padded as transformers pads.
        chunk = np.zeros_like(features)
        for r in rows:
            chunk[r, :, :window - seek[r]] = features[r, :, seek[r]:]
        tokens = greedy_generate(model, chunk, prompt, gen, max_new_tokens=max_new_tokens)
        for r in rows:
            row = [int(t) for t in tokens[r]]
            if gen.eos_token_id in row:
                row = row[:row.index(gen.eos_token_id)]
            elif gen.pad in row and gen.pad != gen.eos_token_id:
                row = row[:row.index(gen.pad)]
            if not row:
                seek[r] = window
                continue
            segs, advance = split_segments(row, gen, seek=int(seek[r]), num_frames=int(window - seek[r]))
            out[r] += segs
            seek[r] = window if advance is None else seek[r] + max(1, advance)
    return out
