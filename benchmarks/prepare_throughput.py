"""Throughput of `prepare`: clips per second per core, at demo and paper frame settings.

    .venv/bin/python benchmarks/prepare_throughput.py [--clips 24] [--workers 1]

Generates demo-corpus clips (160 px, 2-4 s, H.264 + AAC, a face in every frame), then prepares them
with the `demo` config and with the `paper` sampling settings (T=32 frames at 224 px, K=4 face crops of
224 px, 128-bin log-mel), timing each with one worker process. Each clip yields two records (an EMER
explanation and OV labels) from one decode; the numbers count clips (videos).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from microemo_jax.config import load_config
from microemo_jax.data.demo_corpus import write_corpus
from microemo_jax.prepare import prepare

PAPER_DATA = ['model.num_frames=32', 'model.vision.image_size=224', 'model.vision.patch_size=14',
              'model.micro_expression.num_crops=4', 'model.audio.num_mel_bins=128', 'data.max_mel_frames=3000',
              'model.max_utterances=8', 'data.max_seq_len=2048', 'model.frame_encoder.max_timestamp_tokens=16']


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--clips', type=int, default=24)
    parser.add_argument('--workers', type=int, default=1)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix='prepare-bench-')
    try:
        raw = os.path.join(root, 'raw')
        write_corpus(raw, args.clips, seed=0, workers=1, progress=False)
        rows = []
        for name, overrides in (('demo', []), ('paper sampling', PAPER_DATA)):
            cfg = load_config('configs/emer.py:demo', overrides)
            out = os.path.join(root, name.replace(' ', '_'))
            t0 = time.perf_counter()
            report = prepare(cfg, 'folder', raw, out, workers=args.workers)
            seconds = time.perf_counter() - t0
            rows.append((name, report['written'], seconds, report['bytes_per_sample']))
        print(f"\n{'setting':16s} {'records':>8s} {'seconds':>8s} {'clips/s/core':>13s} {'bytes/record':>13s}")
        for name, written, seconds, size in rows:
            per_core = args.clips / seconds / args.workers
            print(f"{name:16s} {written:8d} {seconds:8.1f} {per_core:13.2f} {size:13d}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
