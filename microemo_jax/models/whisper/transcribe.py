"""Greedy timestamped decoding with the Whisper encoder-decoder (``whisper_decoder.WhisperSpeechModel``).

``greedy_generate`` and ``transcribe`` reproduce transformers' ``WhisperForConditionalGeneration
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

from microemo_jax.models.whisper.decoder import WhisperSpeechModel

TIME_PRECISION = 0.02   # seconds per timestamp token (two 10 ms mel frames per encoder position)
INPUT_STRIDE = 2        # mel frames per encoder position
FEATURE_PRECISION = 0.01  # seconds per mel frame


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
