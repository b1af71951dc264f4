"""Pixels travel as uint8 and are normalised on the device: the same numbers as the float32 pipeline had.

The reference below is the float pipeline as it was (one float32 LUT folding colour jitter, clipping and
the mean/std, written channels-first; padding left at 0).
"""
from __future__ import annotations

import functools

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from microemo_jax import pixels
from microemo_jax.batch import batch_spec, synthetic_batch
from microemo_jax.config import load_config
from microemo_jax.data import pipeline
from microemo_jax.data.augment import ClipAugment, crop_frames, resize_square
from microemo_jax.data.shapes import DataShapes, batch_contract
from microemo_jax.models.microemo import MicroEmo
from tests.support.records import make_record

SHAPES = DataShapes.from_config(load_config('configs/emer.py:demo'))

HALF_LEVEL = 0.5 / 255 / float(pixels.STD.min())   # half a uint8 level, in normalised units


def _float_table(aug):
    v = np.arange(256, dtype=np.float64) / 255.0
    v = np.clip((v - 0.5) * aug.contrast + 0.5 + aug.brightness, 0.0, 1.0)
    return np.ascontiguousarray(((v[:, None] - pixels.MEAN[None, :]) / pixels.STD[None, :]).astype(np.float32)[None])


def _float_pipeline(rec, aug):
    """(frames (T, 3, H, W), faces (T, K, 3, h, w)) float32 as the pipeline made them before uint8."""
    s, table = SHAPES, _float_table(aug)
    frames = np.zeros((s.num_frames, 3, s.image_size, s.image_size), np.float32)
    faces = np.zeros((s.num_frames, s.num_crops, 3, s.face_size, s.face_size), np.float32)

    def norm(img):
        y = cv2.LUT(img, table)
        return (y[:, ::-1] if aug.flip else y).transpose(2, 0, 1)

    decode = lambda blob, offs: pipeline._decode_jpegs(blob, offs, rec['name'], 'x')  # noqa: E731
    for i, f in enumerate(crop_frames(decode(rec['frames_jpeg'], rec['frame_offsets']), aug, s.image_size)):
        frames[i] = norm(f)
    crops = [resize_square(c, s.face_size) for c in decode(rec['faces_jpeg'], rec['face_offsets'])]
    for (ti, ki), c in zip(zip(*np.nonzero(rec['face_mask'])), crops, strict=True):
        faces[ti, ki] = norm(c)
    return frames, faces


AUGS = [ClipAugment(), ClipAugment(flip=True, crop=(0.1, 0.05, 0.8, 0.9)),
        ClipAugment(flip=True, brightness=0.07, contrast=1.15), ClipAugment(brightness=-0.1, contrast=0.8)]


@pytest.mark.parametrize('aug', AUGS)
def test_uint8_batch_normalised_on_device_equals_the_float_pipeline(aug):
    rec = make_record('px', shapes=SHAPES, num_frames=5, faces_per_frame=[4, 2, 0, 3, 1], face_size=64,
                      seq_len=120)
    ex = pipeline.example_from_record(rec, SHAPES, aug)
    assert ex['frames'].dtype == np.uint8 and ex['faces'].dtype == np.uint8
    want_frames, want_faces = _float_pipeline(pipeline.as_record(rec), aug)
    normalise = jax.jit(functools.partial(pixels.normalise, xp=jnp))
    got_frames = np.asarray(normalise(ex['frames'], ex['frame_mask']))
    got_faces = np.asarray(normalise(ex['faces'], ex['face_mask']))
    np.testing.assert_allclose(pixels.normalise(ex['frames'], ex['frame_mask']), got_frames, rtol=0, atol=1e-6)
    jittered = aug.brightness != 0 or aug.contrast != 1
    atol = HALF_LEVEL + 1e-5 if jittered else 1e-5       # jitter is rounded to a uint8 level on the host
    np.testing.assert_allclose(got_frames, want_frames, rtol=0, atol=atol)
    np.testing.assert_allclose(got_faces, want_faces, rtol=0, atol=atol)
    assert not got_frames[~ex['frame_mask']].any() and not got_faces[~ex['face_mask']].any()   # padding stays 0
    if jittered:   # rounding, not a bias: the mean error is far below half a level
        assert abs(float((got_frames - want_frames).mean())) < HALF_LEVEL / 10


def test_pixels_in_the_batch_contract_are_uint8():
    spec = batch_contract(SHAPES)
    m = load_config('configs/emer.py:tiny').model
    model_spec = batch_spec(m, 2, 64)
    for key in ('frames', 'faces'):
        assert np.dtype(spec[key][1]) == np.uint8 and np.dtype(model_spec[key].dtype) == np.uint8, key


def test_model_on_uint8_pixels_equals_model_on_host_normalised_floats():
    m = load_config('configs/emer.py:tiny').model
    b = synthetic_batch(m, 2, 64, seed=2)
    assert b['frames'].dtype == np.uint8 and b['faces'].dtype == np.uint8
    floats = dict(b, frames=pixels.normalise(b['frames'], b['frame_mask']),
                  faces=pixels.normalise(b['faces'], b['face_mask']))
    model = MicroEmo(m, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)

    @jax.jit
    def logits(state, batch):
        return nnx.merge(graphdef, state)(batch)

    a = np.asarray(logits(state, {k: jnp.asarray(v) for k, v in b.items()}))
    c = np.asarray(logits(state, {k: jnp.asarray(v) for k, v in floats.items()}))
    np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)
