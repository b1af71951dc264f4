"""How much each input moves the tokens the LLM reads, when other clips' faces, frames or audio are swapped in.

A part the model does not read moves nothing: then no answer can depend on it, whatever training did. The demo's
parts trained from scratch at width 64 read almost nothing under BERT's N(0, 0.02) init (``scratch_init.py``),
and training can also shut a branch (a gate, an output projection); ``benchmarks/input_influence.py`` prints
these figures for a fresh or a trained model.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# Each input and the batch fields that travel with it (a clip's faces come with their masks and landmarks).
INPUTS = {
    'faces': ('faces', 'face_mask', 'face_landmarks', 'face_landmark_mask'),
    'frames': ('frames', 'frame_mask'),
    'audio': ('audio_mel', 'audio_mask'),
}


def influence(model, batch: dict) -> dict:
    """{input: {'video': rel. change, 'audio': rel. change}} of the LLM-input tokens when that input is rolled."""
    tokens, _ = model.encode(batch)
    nv = model.num_video_tokens
    parts = {'video': slice(0, nv), 'audio': slice(nv, tokens.shape[1])}
    out = {}
    for name, fields in INPUTS.items():
        present = [f for f in fields if f in batch]
        if not present:
            continue
        rolled = {**batch, **{f: np.roll(batch[f], 1, axis=0) for f in present}}
        moved, _ = model.encode(rolled)
        out[name] = {}
        for part, cut in parts.items():
            size = float(jnp.abs(tokens[:, cut]).mean()) if tokens[:, cut].size else 0.0
            change = float(jnp.abs(moved[:, cut] - tokens[:, cut]).mean()) if size else 0.0
            out[name][part] = change / size if size else None
    return out
