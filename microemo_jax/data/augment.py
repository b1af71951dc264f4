"""Per-clip image augmentation for the Grain workers (numpy + OpenCV); pixels stay uint8.

One ``ClipAugment`` is drawn per clip and applied identically to every frame and every face crop:
the micro-expression branch takes temporal differences between crops and the video Q-Former compares
frames, so per-frame jitter would show up as motion that is not there. Frames get a mild random
resized crop; face crops are already tight around the face and only share the flip and colour jitter.

Colour jitter is one ``cv2.LUT`` per image (uint8 -> uint8, 256 entries) folding brightness, contrast and
clipping into a single pass, written channels-first straight into the uint8 batch. The mean/std
normalisation happens on the device (``microemo_jax.pixels``), so a batch carries a quarter of the bytes of
float32 pixels. The jittered value is rounded to the nearest uint8 level: at most half a level (0.5/255)
from the float jitter the pipeline applied before pixels went uint8; without jitter (evaluation,
prediction) the pixels are exactly those of the float pipeline.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import cv2
import numpy as np

from microemo_jax.pixels import MEAN, STD  # noqa: F401  (re-exported: the numbers the device normalises with)


@dataclasses.dataclass(frozen=True)
class ClipAugment:
    """One clip's augmentation: crop box as fractions (x0, y0, w, h) of the frame, flip, colour jitter."""
    flip: bool = False
    crop: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    brightness: float = 0.0       # added to pixels in [0, 1]
    contrast: float = 1.0         # scales pixels around 0.5
    hide_words: bool = False      # mask the prompt's words (transcribed speech, subtitle) out: data.text_dropout

    @classmethod
    def sample(cls, rng: np.random.Generator, *, min_scale: float = 0.8, max_aspect: float = 1.15,
               max_brightness: float = 0.1, max_contrast: float = 0.2) -> 'ClipAugment':
        """Mild random draw: crop keeps >= ``min_scale`` of the area, aspect within ``max_aspect``."""
        scale = rng.uniform(min_scale, 1.0)
        aspect = math.exp(rng.uniform(-math.log(max_aspect), math.log(max_aspect)))
        w, h = min(1.0, math.sqrt(scale * aspect)), min(1.0, math.sqrt(scale / aspect))
        x0, y0 = rng.uniform(0.0, 1.0 - w), rng.uniform(0.0, 1.0 - h)
        return cls(flip=bool(rng.random() < 0.5), crop=(float(x0), float(y0), float(w), float(h)),
                   brightness=float(rng.uniform(-max_brightness, max_brightness)),
                   contrast=float(rng.uniform(1.0 - max_contrast, 1.0 + max_contrast)))


IDENTITY = ClipAugment()


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """HWC uint8 image -> (size, size, C); area filter when shrinking, bilinear when enlarging."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def crop_frames(frames: list[np.ndarray], aug: ClipAugment, size: int) -> list[np.ndarray]:
    """The same crop box on every frame, each resized back to ``size`` x ``size``."""
    if aug.crop == IDENTITY.crop:
        return [resize_square(f, size) for f in frames]
    x0, y0, w, h = aug.crop
    out = []
    for f in frames:
        fh, fw = f.shape[:2]
        left, top = int(round(x0 * fw)), int(round(y0 * fh))
        right, bottom = max(left + 1, int(round((x0 + w) * fw))), max(top + 1, int(round((y0 + h) * fh)))
        out.append(resize_square(f[top:min(bottom, fh), left:min(right, fw)], size))
    return out


def jitter_table(aug: ClipAugment) -> np.ndarray | None:
    """(256,) uint8 for ``cv2.LUT``: value -> brightness/contrast-jittered, clipped, rounded; None without jitter."""
    if aug.brightness == 0.0 and aug.contrast == 1.0:
        return None
    v = np.arange(256, dtype=np.float64) / 255.0
    v = np.clip((v - 0.5) * aug.contrast + 0.5 + aug.brightness, 0.0, 1.0)
    return np.rint(v * 255.0).astype(np.uint8)


def augment_into(images: Sequence[np.ndarray], out: Sequence[np.ndarray], aug: ClipAugment = IDENTITY) -> None:
    """uint8 (H, W, 3) RGB images -> ``out[i]`` uint8 (3, H, W), flipped and colour-jittered per ``aug``.

    ``out`` is an array or a list of views into one (e.g. the face slots of a batch row): written in place.
    The device normalises them (``microemo_jax.pixels.normalise``).
    """
    table = jitter_table(aug)
    for img, dst in zip(images, out, strict=True):
        y = img if table is None else cv2.LUT(img, table)
        if aug.flip:
            y = y[:, ::-1]
        np.copyto(dst, y.transpose(2, 0, 1))
