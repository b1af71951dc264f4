"""Per-clip image augmentation and pixel normalisation for the Grain workers (numpy + OpenCV).

One ``ClipAugment`` is drawn per clip and applied identically to every frame and every face crop:
the micro-expression branch takes temporal differences between crops and the video Q-Former compares
frames, so per-frame jitter would show up as motion that is not there. Frames get a mild random
resized crop; face crops are already tight around the face and only share the flip and colour jitter.

Normalisation is one ``cv2.LUT`` per image (uint8 -> float32, 256 entries per channel) that folds the
colour jitter, clipping and the BLIP-2/CLIP mean/std into a single pass, written channels-first straight
into the batch: the cheapest way we found to produce the float32 pixels the batch contract asks for.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import cv2
import numpy as np

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)   # BLIP-2 / CLIP
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


@dataclasses.dataclass(frozen=True)
class ClipAugment:
    """One clip's augmentation: crop box as fractions (x0, y0, w, h) of the frame, flip, colour jitter."""
    flip: bool = False
    crop: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    brightness: float = 0.0       # added to pixels in [0, 1]
    contrast: float = 1.0         # scales pixels around 0.5

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


def pixel_table(aug: ClipAugment) -> np.ndarray:
    """(1, 256, 3) float32 for ``cv2.LUT``: uint8 value -> jittered, clipped, mean/std-normalised value."""
    v = np.arange(256, dtype=np.float64) / 255.0
    v = np.clip((v - 0.5) * aug.contrast + 0.5 + aug.brightness, 0.0, 1.0)
    return np.ascontiguousarray(((v[:, None] - MEAN[None, :]) / STD[None, :]).astype(np.float32)[None])


def normalise_into(images: Sequence[np.ndarray], out: Sequence[np.ndarray], aug: ClipAugment = IDENTITY) -> None:
    """uint8 (H, W, 3) RGB images -> ``out[i]`` float32 (3, H, W), flipped and jittered per ``aug``.

    ``out`` is an array or a list of views into one (e.g. the face slots of a batch row): written in place.
    """
    table = pixel_table(aug)
    for img, dst in zip(images, out, strict=True):
        y = cv2.LUT(img, table)                      # (H, W, 3) float32; ~2x faster than np.take here
        if aug.flip:
            y = y[:, ::-1]
        np.copyto(dst, y.transpose(2, 0, 1))
