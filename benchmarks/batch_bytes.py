"""Host-to-device bytes per batch: uint8 pixels (normalised on the device) against float32 pixels.

    .venv/bin/python benchmarks/batch_bytes.py [--variants demo paper] [--batch 8] [--out runs/batch_bytes.json]

Bytes come from the batch contract (``data/shapes.py``'s ``batch_contract``): every array of a batch, as the Grain
workers hand it to the main process and ``device_batch`` copies it to the devices. "float32 pixels" is the
same batch with frames and faces as float32, as the pipeline produced them before pixels went uint8. The
copy times are ``jax.device_put`` + block of one real-sized batch of each kind to the first device (on a CPU
backend a copy in memory; on a GPU the PCIe transfer), fastest of ``--repeats``, plus, for uint8, the
on-device normalisation (``microemo_jax.pixels.normalise``) it needs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from microemo_jax import pixels  # noqa: E402
from microemo_jax.config import load_config  # noqa: E402
from microemo_jax.data.shapes import DataShapes, batch_contract  # noqa: E402

PIXEL_KEYS = (('frames', 'frame_mask'), ('faces', 'face_mask'))


def batch_arrays(cfg, b: int, pixel_dtype) -> dict[str, np.ndarray]:
    shapes = batch_contract(DataShapes.from_config(cfg))
    rng = np.random.default_rng(0)
    out = {}
    for k, (shape, dtype) in shapes.items():
        dtype = pixel_dtype if k in ('frames', 'faces') else dtype
        out[k] = (rng.integers(0, 256, (b,) + shape, dtype=np.uint8).astype(dtype) if k in ('frames', 'faces')
                  else np.ones((b,) + shape, dtype))
    return out


def _fastest(fn, repeats: int) -> float:
    best = float('inf')
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--variants', nargs='+', default=['demo', 'paper'])
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--out', default='runs/batch_bytes.json')
    args = p.parse_args(argv)
    dev = jax.devices()[0]
    normalise = jax.jit(lambda b: {px: pixels.normalise(b[px], b[m], xp=jnp) for px, m in PIXEL_KEYS})
    rows = []
    for variant in args.variants:
        cfg = load_config(f'configs/emer.py:{variant}')
        u8, f32 = batch_arrays(cfg, args.batch, np.uint8), batch_arrays(cfg, args.batch, np.float32)
        nb = lambda b: sum(v.nbytes for v in b.values())  # noqa: E731
        px = lambda b: sum(b[k].nbytes for k, _ in PIXEL_KEYS)  # noqa: E731
        jax.block_until_ready(normalise(jax.device_put(u8, dev)))   # compile
        t_f32 = _fastest(lambda: jax.device_put(f32, dev), args.repeats)
        t_u8 = _fastest(lambda: jax.device_put(u8, dev), args.repeats)
        t_u8n = _fastest(lambda: normalise(jax.device_put(u8, dev)), args.repeats)
        rows.append(dict(variant=variant, batch=args.batch, float32_bytes=nb(f32), uint8_bytes=nb(u8),
                         float32_pixel_bytes=px(f32), uint8_pixel_bytes=px(u8), ratio=nb(u8) / nb(f32),
                         pixel_ratio=px(u8) / px(f32), put_float32_s=t_f32, put_uint8_s=t_u8,
                         put_uint8_and_normalise_s=t_u8n))
    print(f"device: {dev.device_kind} ({jax.default_backend()}), batch {args.batch}, fastest of {args.repeats}")
    print("| variant | float32 pixels: MiB/batch | uint8 pixels: MiB/batch | ratio (all arrays) | pixels only "
          "| device_put f32 | device_put u8 | u8 + normalise |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['float32_bytes'] / 2**20:.1f} | {r['uint8_bytes'] / 2**20:.1f} | {r['ratio']:.3f} "
              f"| {r['pixel_ratio']:.3f} | {1e3 * r['put_float32_s']:.1f} ms | {1e3 * r['put_uint8_s']:.1f} ms "
              f"| {1e3 * r['put_uint8_and_normalise_s']:.1f} ms |")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(device=dev.device_kind, backend=jax.default_backend(), rows=rows), f, indent=1)
    print(f"wrote {args.out}")


if __name__ == '__main__':
    main()
