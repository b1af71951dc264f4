"""Pixels in the batch: uint8 on the host and on the wire, normalised on the device.

Frames and face crops travel as uint8 (B, T, 3, H, W) / (B, T, K, 3, H, W): a quarter of the bytes of the
float32 pixels the model reads. The Grain workers decode, crop, flip and colour-jitter them (still uint8);
the jitted model turns them into the vision tower's input, ``(x / 255 - MEAN) / STD`` per channel, at the
top of ``MicroEmo.encode``, and zeroes padded frames / crop slots (the masks), exactly as the float pipeline
left them.

This module is numpy-only so the Grain workers can import the numbers without JAX.
"""
from __future__ import annotations

import numpy as np

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)   # BLIP-2 / CLIP, the vision tower's
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


def normalise(pixels, mask=None, *, xp=None):
    """uint8 (..., 3, H, W) -> float32 normalised; positions where ``mask`` (the leading dims) is False -> 0.

    Float input is taken as already normalised and returned unchanged (hand-made test batches, older
    callers). ``xp``: the array module (``jax.numpy`` inside the model; numpy by default).
    """
    xp = np if xp is None else xp
    if pixels.dtype != np.uint8:
        return pixels
    scale = (1.0 / (255.0 * STD)).astype(np.float32).reshape(3, 1, 1)
    shift = (MEAN / STD).astype(np.float32).reshape(3, 1, 1)
    y = pixels.astype(xp.float32) * scale - shift
    if mask is not None:
        y = xp.where(xp.asarray(mask, bool).reshape(mask.shape + (1, 1, 1)), y, xp.float32(0))
    return y
