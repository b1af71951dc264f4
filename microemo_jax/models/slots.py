"""Which frames (or audio positions) each token slot looks at: whole clip, utterances, fixed windows.

Slots are the unit of the utterance-aware Q-Formers: slot 0 is the whole clip, slots 1..U_max the
utterance spans (padded slots masked), then optional TimeChat-style fixed windows over frame indices.
Everything is a static-shape boolean mask, so one compiled program serves every clip.
"""
from __future__ import annotations

import jax.numpy as jnp


def utterance_masks(times, valid, utterances, utterance_mask):
    """(B, U, N) mask of the elements (timestamped ``times`` (B, N)) inside each utterance [start, end].

    An utterance too short to contain any sampled element gets the element nearest to its midpoint,
    so every real utterance sees at least one frame (if the clip has any). Padded utterances see nothing.
    """
    start, end = utterances[..., 0:1], utterances[..., 1:2]            # (B, U, 1)
    t = times[:, None, :]                                               # (B, 1, N)
    ok = valid[:, None, :].astype(bool)
    inside = (t >= start) & (t <= end) & ok
    mid = (start + end) / 2
    dist = jnp.where(ok, jnp.abs(t - mid), jnp.inf)
    nearest = (jnp.arange(times.shape[-1]) == jnp.argmin(dist, axis=-1)[..., None]) & ok
    chosen = jnp.where(inside.any(-1, keepdims=True), inside, nearest)
    return chosen & utterance_mask[..., None].astype(bool)


def window_masks(valid, window_size: int, stride: int):
    """(B, W, N) masks of fixed windows [i*stride, i*stride + window_size) over element indices."""
    n = valid.shape[-1]
    if window_size <= 0:
        return jnp.zeros(valid.shape[:1] + (0, n), bool)
    stride = stride or window_size
    starts = jnp.arange(0, n, stride)
    idx = jnp.arange(n)
    windows = (idx[None, :] >= starts[:, None]) & (idx[None, :] < starts[:, None] + window_size)
    return windows[None] & valid[:, None, :].astype(bool)


def slot_masks(times, valid, utterances, utterance_mask, *, utterance_scale: bool = True,
               window_size: int = 0, window_stride: int = 0):
    """(B, S, N) element masks and (B, S) slot validity for [whole, utterances..., windows...]."""
    valid = valid.astype(bool)
    masks = [valid[:, None, :]]
    if utterance_scale:
        masks.append(utterance_masks(times, valid, utterances, utterance_mask))
    masks.append(window_masks(valid, window_size, window_stride))
    masks = jnp.concatenate(masks, axis=1)
    return masks, masks.any(-1)


def num_slots(max_utterances: int, num_frames: int, *, utterance_scale: bool = True, window_size: int = 0,
              window_stride: int = 0) -> int:
    windows = 0 if window_size <= 0 else len(range(0, num_frames, window_stride or window_size))
    return 1 + (max_utterances if utterance_scale else 0) + windows
