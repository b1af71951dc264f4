"""The demo's pretrained face encoder: its face ViT taught to read facial action units from aligned crops.

Why: the paper's micro-expression branch reads faces with a pretrained tower (EVA ViT-g), and the field's
systems read them with pretrained face models (OpenFace action units, FER-pretrained MAE/VideoMAE encoders).
The demo has no pretrained weights offline, so it pretrains its own (``init.face_encoder='demo'``, the demo's
default, frozen there by ``micro_expression.freeze_face_encoder``):
faces of the demo's face rig (``demo.face``) with random action-unit intensities, talking, blinks and head
motion, JPEG-compressed, found and aligned by the very detector, face mesh and warp that ``prepare`` uses, and a
regression of the rig's action-unit parameters (``face.PARAMS``) from each crop, as an AU-intensity detector is
trained. It never sees a corpus clip or an emotion label: mapping action units to emotions is left to the model.

``runs.face_encoder`` writes the trained face ViT as a parameter folder (``python -m microemo_jax.runs.face_encoder
OUT``) and builds the demo's on first use (``init.face_encoder='demo'``).
"""
from __future__ import annotations

import hashlib
import json
import time

import cv2
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from microemo_jax.data.faces import align as align_lib, landmarks as lm_lib
from microemo_jax.data.faces.detector import make_detector
from microemo_jax.data.faces.tubelets import default_mesh
from microemo_jax.demo import face as demo_face
from microemo_jax.models.layers import Dense
from microemo_jax.models.microemo import vision_config
from microemo_jax.models.vit import VisionTransformer
from microemo_jax.pixels import normalise

VERSION = 1          # bump when the rendering, the crops or the training change (part of the cache key)
FRAME_SIZE = 160     # the demo clips' frame size (demo.clip.make_clip)
EXAMPLES, STEPS = 4000, 1500   # rendered crops (a tenth held out) and optimiser steps: ~2 min on 2 cores


def random_face(rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A face state (``face.PARAMS``) and head pose: one expression at a random intensity, sometimes blended
    with a second, with speech-like mouth opening, blinks and head motion as the demo clips have them."""
    emotions = demo_face.EMOTIONS
    p = demo_face.expression(str(rng.choice(emotions)), float(rng.uniform(0.0, 1.0)))
    if rng.random() < 0.3:                                  # blends: transitions and masked expressions
        q = demo_face.expression(str(rng.choice(emotions)), float(rng.uniform(0.0, 1.0)))
        a = float(rng.uniform(0.2, 0.8))
        p = a * p + (1 - a) * q
    idx = {k: demo_face.PARAMS.index(k) for k in ('teeth_upper', 'teeth_lower', 'jaw', 'blink')}
    loud = float(rng.uniform(0, 1)) if rng.random() < 0.6 else 0.0
    p[idx['jaw']] += 0.3 * float(rng.uniform(0.7, 1.2)) * loud
    p[idx['teeth_upper']] += 0.45 * loud * np.clip(1 - p[idx['teeth_upper']], 0, 1)
    p[idx['teeth_lower']] += 0.2 * loud * np.clip(1 - p[idx['teeth_lower']], 0, 1)
    if rng.random() < 0.15:
        p[idx['blink']] = max(p[idx['blink']], float(rng.uniform(0.3, 1.0)))
    head = (float(rng.uniform(-2, 2)), float(rng.uniform(-1.5, 2)), float(rng.uniform(-2.5, 2.5)))
    return p.astype(np.float32), head


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError('JPEG encoding failed')
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def aligned_crop(frame: np.ndarray, detector, mesh, crop_size: int) -> np.ndarray | None:
    """The crop ``prepare`` would cut of the face in one frame: detector, face mesh settled on it, the eye/mouth
    similarity warp (``data.faces.align``); None when no face is found."""
    boxes, kps = detector.detect_with_keypoints(frame)
    if not len(boxes):
        return None
    points, _, _ = mesh.settle(frame, lm_lib.roi_from_detection(boxes[0][:4], kps[0]))
    if points is None:
        return None
    m = align_lib.alignment_matrix(points[lm_lib.MESH_68, :2], crop_size)
    return None if m is None else align_lib.warp_face(frame, m, crop_size)


def make_examples(count: int, crop_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` aligned crops, uint8 (N, 3, crop, crop), and their action-unit targets (N, len(PARAMS))."""
    rng = np.random.default_rng([seed, 7])
    rig, detector, mesh = demo_face.FaceRig(FRAME_SIZE), make_detector('blazeface'), default_mesh()
    crops, targets = [], []
    misses = 0
    while len(crops) < count:
        p, head = random_face(rng)
        frame = _jpeg(rig.render(p, head), int(rng.integers(60, 96)))   # the clips are H.264-compressed
        crop = aligned_crop(frame, detector, mesh, crop_size)
        if crop is None:
            misses += 1
            if misses > count:
                raise RuntimeError(f'the face pipeline found no face in {misses} rendered faces')
            continue
        crops.append(_jpeg(crop, 90).transpose(2, 0, 1))                 # records keep crops as JPEG 90
        targets.append(p)
    return np.stack(crops), np.stack(targets)


class FaceEncoder(nnx.Module):
    """Only the face ViT, named and built as ``MicroEmo`` builds it (``model.micro_expression.face_vision``,
    layer scan, dtypes), so that its saved parameters are ``face_vit/...`` of the full model."""

    def __init__(self, model_cfg, *, rngs: nnx.Rngs):
        stack = dict(scan=model_cfg.scan_layers, remat_policy=model_cfg.remat_policy)
        self.face_vit = VisionTransformer(vision_config(model_cfg.micro_expression.face_vision),
                                          dtype=jnp.dtype(model_cfg.dtype), param_dtype=jnp.dtype(model_cfg.param_dtype),
                                          rngs=rngs, **stack)


class FaceRegressor(nnx.Module):
    """The face encoder and a linear read-out of its class token (the read-out is not kept)."""

    def __init__(self, model_cfg, num_targets: int, *, rngs: nnx.Rngs):
        self.encoder = FaceEncoder(model_cfg, rngs=rngs)
        width = model_cfg.micro_expression.face_vision.hidden_size
        self.head = Dense(width, num_targets, axes=('embed', 'embed'), rngs=rngs)

    def __call__(self, pixels):
        return self.head(self.encoder.face_vit(normalise(pixels, xp=jnp))[:, 0])


def pretrain(model_cfg, *, examples: int = EXAMPLES, steps: int = STEPS, batch_size: int = 64, lr: float = 1e-3,
             seed: int = 0, log=None) -> tuple[FaceRegressor, dict]:
    """Render, crop and fit; returns the model and a report (held-out R^2 per action unit and overall)."""
    log = log or (lambda line: print(line, flush=True))
    t0 = time.time()
    x, y = make_examples(examples, model_cfg.micro_expression.face_vision.image_size, seed)
    log(f'face encoder: {len(x)} aligned crops of rendered faces in {time.time() - t0:.0f}s')
    held = max(1, len(x) // 10)
    x_train, y_train, x_val, y_val = x[held:], y[held:], x[:held], y[:held]
    mean, scale = y_train.mean(0), y_train.std(0) + 1e-3       # regress standardised targets
    model = FaceRegressor(model_cfg, y.shape[1], rngs=nnx.Rngs(seed))
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, min(100, steps // 10), steps, lr * 0.05)
    opt = nnx.Optimizer(model, optax.adamw(schedule, weight_decay=1e-4), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, xb, yb):
        def loss_fn(m):
            return jnp.mean((m(xb) - yb) ** 2)
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    rng = np.random.default_rng([seed, 8])
    t0 = time.time()
    for i in range(steps):
        idx = rng.integers(0, len(x_train), batch_size)
        xb = x_train[idx]
        flip = rng.random(batch_size) < 0.5        # the training pipeline flips crops too
        xb = np.where(flip[:, None, None, None], xb[..., ::-1], xb)
        loss = step(model, opt, jnp.asarray(xb), jnp.asarray((y_train[idx] - mean) / scale))
        if (i + 1) % 250 == 0:
            log(f'face encoder: step {i + 1}/{steps} loss {float(loss):.4f} ({time.time() - t0:.0f}s)')
    pred = np.concatenate([np.asarray(model(jnp.asarray(x_val[i:i + 256]))) for i in range(0, held, 256)])
    pred = pred * scale + mean
    var = y_val.var(0)
    r2 = {name: float(1 - ((pred[:, j] - y_val[:, j]) ** 2).mean() / var[j])
          for j, name in enumerate(demo_face.PARAMS) if var[j] > 1e-6}
    report = {'version': VERSION, 'examples': int(len(x)), 'held_out': int(held), 'steps': steps, 'seed': seed,
              'targets': list(demo_face.PARAMS), 'held_out_r2': r2,
              'held_out_r2_mean': float(np.mean(list(r2.values()))) if r2 else float('nan')}
    log(f"face encoder: held-out R^2 {report['held_out_r2_mean']:.3f} over {len(r2)} action units")
    return model, report


def cache_key(model_cfg, *, examples: int, steps: int, seed: int) -> str:
    """What shapes the pretrained weights: this module's version, the face ViT and how it is stored."""
    what = {'version': VERSION, 'face_vision': model_cfg.micro_expression.face_vision.to_dict(),
            'scan_layers': model_cfg.scan_layers, 'param_dtype': model_cfg.param_dtype, 'examples': examples,
            'steps': steps, 'seed': seed}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:10]
