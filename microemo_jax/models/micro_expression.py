"""Micro-expression local branch: dynamics of the speaker's face around each anchor frame.

Micro-expressions last under 0.5 s, so each anchor t_i gets a *tubelet* of K consecutive face crops at
the native frame rate. Per-crop features f_{i,k} (from the face encoder) become K tokens: the
appearance f_{i,0} and the first-order differences f_{i,k} - f_{i,k-1} (the motion that carries the
micro-expression), each with a temporal position embedding, then temporal self-attention. Crops are
packed at the front of the tubelet; ``face_mask`` marks the real ones.

With ``landmarks=True`` each token also gets the face's geometry (``model.micro_expression.landmarks``):
the crop's 68 face-mesh landmarks (data/faces/tubelets.py; crop coordinates) are normalised for position and size
(centred on their mean, divided by the inter-ocular distance), so only the face's shape remains; token 0
adds that shape, and with ``use_differences`` token k adds its displacement since crop k-1 (x10: typical
displacements are a few hundredths of the eye distance), through one linear layer per kind. Crops without
landmarks (``landmark_mask``) add nothing.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from microemo_jax.models.blocks import SelfAttentionBlock
from microemo_jax.models.layers import Dense, LayerNorm, default_kernel_init, param, split_rng


def face_residuals(faces, face_mask):
    """Each normalised crop (B, T, K, C, H, W) minus the mean of its clip's crops (zeros where ``face_mask`` is
    False): what the face does at that moment, without who it is (``micro_expression.face_input='residuals'``).

    Why: one person's crops differ from each other by a few grey levels (an expression, a blink), far less
    than any face differs from a blank crop; an encoder trained from scratch on whole crops sees almost
    only the identity (the demo's random face ViT gives every crop of a clip the same class token to 0.2 %).
    Micro-expression recognition reads the change against the face's own neutral state for the same reason
    (onset-to-apex differences, e.g. OFF-ApexNet's optical flow)."""
    return _minus_clip_mean(faces, face_mask)


def feature_residuals(features, face_mask):
    """Each crop's face features (B, T, K, F) minus the mean features of its clip's crops (zeros where
    ``face_mask`` is False): what the face does at that moment against its own average state, in the face
    encoder's terms (``micro_expression.feature_baseline``).

    Why: a pretrained face encoder describes the whole face, so who the speaker is, the pose and the lasting
    expression fill most of its features; a micro-expression is a brief departure from the face's own state.
    Against the clip's mean the crops of a still face give zeros and the micro-expression's crops stand out,
    as micro-expression recognition reads onset-to-apex change (``face_residuals`` does the same with pixels,
    for an encoder that has not learned faces). The branch then has no identity left to key answers on."""
    return _minus_clip_mean(features, face_mask)


def _minus_clip_mean(values, face_mask):
    """(B, T, K, ...) values minus the mean over their clip's real crops (``face_mask`` (B, T, K)); zeros where
    the mask is False."""
    m = face_mask.astype(values.dtype).reshape(face_mask.shape + (1,) * (values.ndim - 3))
    mean = (values * m).sum(axis=(1, 2), keepdims=True) / jnp.maximum(m.sum(axis=(1, 2), keepdims=True), 1.0)
    return (values - mean) * m


class MicroExpressionBranch(nnx.Module):

    def __init__(self, feature_dim: int, hidden_size: int, num_crops: int, num_layers: int, num_heads: int, *,
                 use_differences: bool = True, landmarks: bool = False, num_landmarks: int = 68,
                 dropout_rate: float = 0.0, dtype=jnp.float32, param_dtype=jnp.float32, attention_impl=None,
                 rngs: nnx.Rngs):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.num_crops, self.use_differences = num_crops, use_differences
        self.landmarks, self.num_landmarks = landmarks, num_landmarks
        self.appearance = Dense(feature_dim, hidden_size, axes=('embed', 'embed'), **kw)
        self.motion = Dense(feature_dim, hidden_size, axes=('embed', 'embed'), **kw) if use_differences else None
        # landmark geometry (2 * num_landmarks numbers) -> hidden; None when the switch is off
        self.shape_proj = (Dense(2 * num_landmarks, hidden_size, axes=(None, 'embed'), **kw) if landmarks else None)
        self.shape_motion = (Dense(2 * num_landmarks, hidden_size, axes=(None, 'embed'), **kw)
                             if landmarks and use_differences else None)
        self.temporal_pos = param(rngs, default_kernel_init, (num_crops, hidden_size), ('pos', 'embed'), param_dtype)
        self.blocks = nnx.List([SelfAttentionBlock(hidden_size, num_heads, dropout_rate=dropout_rate,
                                                   attention_impl=attention_impl, **kw)
                                for _ in range(num_layers)])
        self.norm = LayerNorm(hidden_size, **kw)

    def _landmark_tokens(self, landmarks, landmark_mask):
        """(B, T, K, L, 2) crop-unit landmarks -> (B, T, K, D) geometry tokens (zero where unknown)."""
        if landmarks is None or landmark_mask is None:
            raise ValueError("model.micro_expression.landmarks is on: the batch needs face_landmarks "
                             "(B, T, K, L, 2) and face_landmark_mask (B, T, K) (records from prepare carry them)")
        if landmarks.shape[2:] != (self.num_crops, self.num_landmarks, 2):
            raise ValueError(f"face_landmarks must be (batch, frames, {self.num_crops}, {self.num_landmarks}, 2), "
                             f"got {landmarks.shape}")
        pts = landmarks.astype(jnp.float32)
        ok = landmark_mask.astype(bool)
        centred = pts - pts.mean(axis=-2, keepdims=True)
        # inter-ocular distance from the iBUG eye points (36-41 right eye, 42-47 left eye)
        eyes = pts[..., 42:48, :].mean(-2) - pts[..., 36:42, :].mean(-2)
        iod = jnp.sqrt(jnp.sum(eyes ** 2, axis=-1, keepdims=True))[..., None]
        ok = ok & (iod[..., 0, 0] > 1e-3)
        shape = jnp.where(ok[..., None, None], centred / jnp.maximum(iod, 1e-3), 0.0)
        shape = shape.reshape(shape.shape[:3] + (-1,))
        if self.use_differences:
            first = self.shape_proj(shape[:, :, :1]) * ok[:, :, :1, None]
            both = ok[:, :, 1:] & ok[:, :, :-1]
            moves = self.shape_motion(10.0 * (shape[:, :, 1:] - shape[:, :, :-1])) * both[..., None]
            return jnp.concatenate([first, moves], axis=2)
        return self.shape_proj(shape) * ok[..., None]

    def __call__(self, features, face_mask, *, landmarks=None, landmark_mask=None, dropout_rng=None):
        """features (B, T, K, F), face_mask (B, T, K) [, landmarks (B, T, K, L, 2), landmark_mask (B, T, K)]
        -> local tokens (B, T, K, D), token mask (B, T, K). The landmarks are read only with ``landmarks=True``."""
        if features.ndim != 4 or features.shape[2] != self.num_crops:
            raise ValueError(f"face features must be (batch, frames, {self.num_crops} crops, dim), "
                             f"got {features.shape}")
        b, t, k, f = features.shape
        valid = face_mask.astype(bool)
        if self.use_differences:
            first = self.appearance(features[:, :, :1])
            moves = self.motion(features[:, :, 1:] - features[:, :, :-1])
            tokens = jnp.concatenate([first, moves], axis=2)
            valid = jnp.concatenate([valid[:, :, :1], valid[:, :, 1:] & valid[:, :, :-1]], axis=2)
        else:
            tokens = self.appearance(features)
        if self.landmarks:
            tokens = tokens + self._landmark_tokens(landmarks, landmark_mask).astype(tokens.dtype)
        tokens = tokens + self.temporal_pos[...].astype(tokens.dtype)
        x = tokens.reshape(b * t, k, -1)
        flat_valid = valid.reshape(b * t, k)
        for block, rng in zip(self.blocks, split_rng(dropout_rng, len(self.blocks))):
            x = block(x, flat_valid, dropout_rng=rng)
        x = self.norm(x).reshape(b, t, k, -1)
        return jnp.where(valid[..., None], x, 0), valid
