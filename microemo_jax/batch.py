"""Batches without data: abstract batches for compiling ahead of time, and synthetic ones for tests.

The batch contract itself (names, shapes, dtypes) is one table, ``data/shapes.py``'s ``batch_contract``;
the Grain pipeline allocates its batches from it and this module reads it too. ``batch_spec`` gives them as abstract arrays (for ahead-of-time compilation
and planning); ``synthetic_batch`` fills them with random but well-formed values (valid masks, sorted
timestamps, utterance spans inside the clip, modality placeholders after the first token) for tests and
benchmarks.

Frames and face crops are uint8 pixels (``microemo_jax.pixels``): the model normalises them on the device.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from microemo_jax.data.records.record import NUM_LANDMARKS
from microemo_jax.data.shapes import DataShapes, batch_contract


def batch_spec(m, batch_size: int, seq_len: int, *, mel_frames: int | None = None) -> dict[str, jax.ShapeDtypeStruct]:
    """Abstract batch for model config ``m`` (the ``model`` section): ``data/shapes.py``'s batch contract."""
    shapes = DataShapes.from_model(m, seq_len, mel_frames=mel_frames)
    return {name: jax.ShapeDtypeStruct(shape, dtype)
            for name, (shape, dtype) in batch_contract(shapes, batch_size).items()}


def synthetic_batch(m, batch_size: int, seq_len: int, *, seed: int = 0, mel_frames: int | None = None) -> dict:
    """Random, well-formed numpy batch matching ``batch_spec``; the second half of each clip is padding."""
    spec = batch_spec(m, batch_size, seq_len, mel_frames=mel_frames)
    rng = np.random.default_rng(seed)
    b, t = spec['frame_mask'].shape
    out = {}
    for name, s in spec.items():
        if s.dtype == jnp.float32:
            out[name] = rng.standard_normal(s.shape).astype(np.float32)
        elif s.dtype == jnp.uint8:                          # pixels: normalised on the device
            out[name] = rng.integers(0, 256, s.shape, dtype=np.uint8)
    duration = 4.0
    out['timestamps'] = np.broadcast_to(np.linspace(0, duration, t, endpoint=False, dtype=np.float32), (b, t)).copy()
    out['frame_mask'] = np.ones((b, t), bool)
    out['frame_mask'][1:, t // 2 + 1:] = False              # later clips are shorter: padded frames
    # ids of the tokenizer prepare would use (model.frame_encoder.timestamp_tokenizer)
    ts_vocab = m.llm.vocab_size if m.frame_encoder.timestamp_tokenizer == 'llm' else m.image_qformer.vocab_size
    out['timestamp_ids'] = rng.integers(1, max(ts_vocab, 2), spec['timestamp_ids'].shape).astype(np.int32)
    out['timestamp_mask'] = np.ones(spec['timestamp_mask'].shape, np.int32)
    out['timestamp_mask'][..., -2:] = 0                     # padded text
    k = spec['face_mask'].shape[-1]
    out['face_mask'] = np.ones((b, t, k), bool)
    out['face_mask'][:, ::2, k - 1:] = False                # some tubelets are short
    out['face_mask'][:, 1, :] = False                       # a frame without a face
    # landmarks in crop units around a face shape, moving a little from crop to crop; known where there is a crop
    shape = rng.uniform(0.25, 0.75, (NUM_LANDMARKS, 2))
    out['face_landmarks'] = (shape + rng.normal(0, 0.01, spec['face_landmarks'].shape)).astype(np.float32)
    out['face_landmark_mask'] = out['face_mask'].copy()
    out['face_landmarks'] *= out['face_landmark_mask'][..., None, None]
    n_pos = spec['audio_mask'].shape[1]
    out['audio_mask'] = np.zeros((b, n_pos), bool)
    out['audio_mask'][:, : n_pos * 3 // 4] = True
    u = spec['utterance_mask'].shape[1]
    starts = np.sort(rng.uniform(0, duration * 0.5, (b, u)), axis=1)
    out['utterances'] = np.stack([starts, starts + rng.uniform(0.2, 1.5, (b, u))], -1).astype(np.float32)
    out['utterance_mask'] = np.arange(u)[None, :] < np.maximum(1, u - np.arange(b)[:, None])  # row i has u-i
    out['input_ids'] = rng.integers(3, m.llm.vocab_size, (b, seq_len)).astype(np.int32)
    out['attention_mask'] = np.ones((b, seq_len), bool)
    out['attention_mask'][1:, -3:] = False                  # right padding
    n_mod = spec['modality_positions'].shape[1]
    out['modality_positions'] = np.broadcast_to(np.arange(1, 1 + n_mod, dtype=np.int32), (b, n_mod)).copy()
    out['loss_mask'] = np.zeros((b, seq_len), bool)
    out['loss_mask'][:, 1 + n_mod + (seq_len - 1 - n_mod) // 2:] = True
    out['loss_mask'] &= out['attention_mask']
    return out
