"""Throughput of the training stream (JPEG decode + augment + normalise + pad + batch) at demo and paper shapes.

    .venv/bin/python benchmarks/stream_throughput.py                      # both variants, 0/1/2 workers, ~2-3 min
    .venv/bin/python benchmarks/stream_throughput.py --variants paper --workers 0 1 2 4 8 --seconds 15 --device-put

Synthetic prepared clips in the record schema (real JPEGs of a real face photo at the config's jpeg_quality;
every frame has all K face crops; full-length audio and prompt, so this is the worst case per clip) are fed
as an in-memory list source, so the numbers are the per-clip CPU cost of the workers plus Grain's hand-over
of the batches to the main process (and, with --device-put, the copy to the first JAX device); ArrayRecord
reads come on top (a few MiB per clip from the page cache: small next to decoding).

Prints samples/s for each worker count, samples/s per worker, and the arithmetic for feeding the paper
config on one H100 at an ASSUMED step time (replace it with the measured step time when there is one).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import absl.flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from microemo_jax.config import load_config  # noqa: E402
from microemo_jax.data import pipeline  # noqa: E402
from microemo_jax.data.augment import ClipAugment  # noqa: E402
from microemo_jax.data.records import record  # noqa: E402
from microemo_jax.data.shapes import DataShapes, batch_contract  # noqa: E402

ASSUMED_STEP_S = 1.0   # ASSUMPTION, not measured: one paper-config train step (global batch 8) on one H100


def _face_photo() -> np.ndarray:
    try:
        import skimage.data
        return skimage.data.astronaut()                     # 512x512 RGB, a real face
    except Exception:                                       # keep the benchmark runnable without scikit-image
        y, x = np.mgrid[0:512, 0:512] / 512.0
        return (np.stack([np.sin(9 * x), np.cos(7 * y), np.sin(5 * (x + y))], -1) * 100 + 128).astype(np.uint8)


def _jpeg(img: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def synthetic_records(cfg, n: int) -> list[dict]:
    """``n`` worst-case clips for ``cfg``: T frames, K crops each, full audio, max_seq_len tokens."""
    s = DataShapes.from_config(cfg)
    photo, q = _face_photo(), cfg.data.jpeg_quality
    face = photo[30:230, 150:350]                           # the astronaut's face
    rng = np.random.default_rng(0)
    recs = []
    for i in range(n):
        frames, crops = [], []
        for _ in range(s.num_frames):
            dx, dy = rng.integers(-12, 13, 2)
            frames.append(_jpeg(cv2.resize(np.roll(photo, (dy, dx), (0, 1)), (s.image_size,) * 2,
                                           interpolation=cv2.INTER_AREA), q))
            for k in range(s.num_crops):
                crop = face[max(0, dy + k):, max(0, dx + k):][:190, :190]
                crops.append(_jpeg(cv2.resize(crop, (s.face_size,) * 2, interpolation=cv2.INTER_AREA), q))
        frames_jpeg, frame_offsets = record.join_jpegs(frames)
        faces_jpeg, face_offsets = record.join_jpegs(crops)
        t, u, n_tok = s.num_frames, s.max_utterances, s.seq_len
        starts = np.linspace(0, 20, u, endpoint=False, dtype=np.float32)
        loss = np.zeros(n_tok, bool)
        loss[-n_tok // 4:] = True
        recs.append(dict(
            name=f'synthetic_{i:04d}', source='folder', utterance_source='subtitles', subtitle='', answer='',
            timestamp_tokenizer='bert',
            openset='[]', timestamps=np.linspace(0, 30, t, endpoint=False, dtype=np.float32),
            frames_jpeg=frames_jpeg, frame_offsets=frame_offsets, faces_jpeg=faces_jpeg, face_offsets=face_offsets,
            face_mask=np.ones((t, s.num_crops), bool), face_boxes=np.zeros((t, 4), np.float32),
            face_landmarks=np.full((t, s.num_crops, 68, 2), 0.5, np.float16),
            face_landmark_mask=np.ones((t, s.num_crops), bool),
            audio_mel=rng.standard_normal((s.mel_frames, s.num_mel_bins)).astype(np.float16),  # time-major
            utterances=np.stack([starts, starts + 2.0], -1), timestamp_ids=np.ones((t, s.timestamp_tokens), np.int32),
            timestamp_mask=np.ones((t, s.timestamp_tokens), np.int32),
            input_ids=rng.integers(3, 30000, n_tok).astype(np.int32), loss_mask=loss,
            modality_positions=np.arange(1, 1 + s.video_tokens + s.audio_tokens, dtype=np.int32),
            words_span=np.zeros(2, np.int32)))
        record.check_record(recs[-1])
    return recs


def per_core(source, cfg, seconds: float) -> float:
    """samples/s of the per-clip work (decode, augment, normalise, pad) on one thread, no Grain."""
    shapes, rng = DataShapes.from_config(cfg), np.random.default_rng(0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 4:
        pipeline.example_from_record(source[n % len(source)], shapes, ClipAugment.sample(rng))
        n += 1
    return n / (time.perf_counter() - t0)


def measure(source, cfg, workers: int, seconds: float, device_put: bool = False) -> tuple[float, float]:
    """(samples/s in steady state, seconds to the first batch incl. worker start-up)."""
    put = _device_put() if device_put else (lambda batch: None)
    t0 = time.perf_counter()
    it = pipeline.make_iterator(source, cfg, train=True, process_index=0, process_count=1, num_workers=workers)
    batch = next(it)
    first = time.perf_counter() - t0
    b = len(batch['names'])
    for _ in range(2 * workers + 2):                        # drain what was prefetched during start-up
        put(next(it))
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 2:
        put(next(it))
        n += 1
    rate = n * b / (time.perf_counter() - t0)
    if hasattr(it, 'close'):
        it.close()
    return rate, first


def _device_put():
    """Copy every batch to the first accelerator and wait, as a training loop's input stage would."""
    import jax
    device = jax.devices()[0]

    def put(batch):
        arrays = jax.device_put({k: v for k, v in batch.items() if k != 'names'}, device)
        jax.block_until_ready(arrays)
    return put


def example_bytes(cfg) -> int:
    spec = batch_contract(DataShapes.from_config(cfg), 1)
    return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in spec.values())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--variants', nargs='+', default=['demo', 'paper'])
    p.add_argument('--workers', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--seconds', type=float, default=12.0, help='steady-state time per measurement')
    p.add_argument('--clips', type=int, default=8, help='distinct synthetic clips (the stream repeats them)')
    p.add_argument('--device-put', action='store_true', help='also copy each batch to the first JAX device')
    args = p.parse_args(argv)
    absl.flags.FLAGS.mark_as_parsed()   # Grain's worker processes read absl flags

    device = ''
    if args.device_put:
        import jax
        device = f"; batches copied to {jax.devices()[0].device_kind}"
    print(f"host: {os.cpu_count()} CPU cores; cv2 {cv2.__version__}; augment on; train stream{device}")
    cv2.setNumThreads(1)
    rows, cores = [], {}
    for variant in args.variants:
        cfg = load_config(os.path.join(ROOT, f'configs/emer.py:{variant}'))
        t0 = time.perf_counter()
        source = synthetic_records(cfg, args.clips)
        mb = sum(r['frames_jpeg'].nbytes + r['faces_jpeg'].nbytes + r['audio_mel'].nbytes for r in source)
        mb /= len(source) * 2**20
        print(f"\n{variant}: {args.clips} clips built in {time.perf_counter() - t0:.1f} s, "
              f"{mb:.2f} MiB stored per clip, "
              f"{example_bytes(cfg) / 2**20:.1f} MiB per padded example, batch {cfg.data.batch_size}")
        cores[variant] = per_core(source, cfg, args.seconds / 2)
        print(f"  one core, no Grain: {cores[variant]:7.2f} samples/s ({1000 / cores[variant]:.1f} ms per clip)")
        for w in args.workers:
            rate, first = measure(source, cfg, w, args.seconds, args.device_put)
            pw = rate / max(w, 1)
            rows.append((variant, w, rate, pw, first))
            print(f"  workers={w}: {rate:7.2f} samples/s  ({pw:6.2f} per worker; first batch after {first:.1f} s)",
                  flush=True)

    print("\n| variant | workers | samples/s | samples/s per worker | first batch (s) |")
    print("|---|---|---|---|---|")
    for variant, w, rate, pw, first in rows:
        print(f"| {variant} | {w} | {rate:.2f} | {pw:.2f} | {first:.1f} |")

    if 'paper' in cores:
        cfg = load_config(os.path.join(ROOT, 'configs/emer.py:paper'))
        b, mib = cfg.data.batch_size, example_bytes(cfg) / 2**20
        single = min([cores['paper']] + [pw for v, w, _, pw, _ in rows if v == 'paper' and w == 1])
        demand = b / ASSUMED_STEP_S
        print(f"\nFeeding the paper config on one H100 (ASSUMED step time {ASSUMED_STEP_S:.1f} s for global batch {b};"
              f" replace with the measured one):")
        print(f"  demand  = {b} samples / {ASSUMED_STEP_S:.1f} s = {demand:.1f} samples/s "
              f"= {demand * mib / 1024:.2f} GiB/s of float32 batches to the GPU")
        print(f"  one worker = {single:.2f} samples/s (the lower of: one core without Grain, the workers=1 stream)")
        print(f"  linear estimate: ceil({demand:.1f} / {single:.2f}) = {math.ceil(demand / single)} workers")
        for v, w, rate, _, _ in rows:
            if v == 'paper' and w > 0:
                verdict = 'keeps up' if rate >= demand else 'too slow'
                print(f"  measured workers={w}: {rate:.1f} samples/s -> {verdict} at the assumed step "
                      f"(sustains any step >= {b / rate:.2f} s)")
        print(f"  config: data.num_workers={cfg.data.num_workers}")

if __name__ == '__main__':
    main()
