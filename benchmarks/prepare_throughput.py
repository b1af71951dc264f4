"""Throughput of `prepare`: clips per second per core, at demo and paper sampling, and the share of each stage.

    .venv/bin/python benchmarks/prepare_throughput.py [--clips 8] [--workers 1] [--out runs/prepare_throughput.json]

Generates demo-corpus clips (160 px, 2-4 s, H.264 + AAC, a face in every frame, espeak-ng speech where
installed), then, for each setting:

* end to end: ``prepare(cfg, 'folder', ...)`` with ``--workers`` worker processes (records written, shards,
  splits; the clips/s per core figure);
* by stage: the same ``ClipProcessor`` prepare's workers run, in this process (one core, OpenCV on one
  thread), on every clip, with each stage timed: decode (PyAV, frame sampling and resizing), faces (detector,
  face mesh, alignment, tubelets), audio (load + log-mel), utterances (subtitles / VAD / ASR), tokenize
  (prompt and timestamp text), JPEG (encoding frames and crops for the record), other (the rest).

Settings: ``demo`` (T=8 frames of 64 px, K=4 crops) and ``paper sampling`` (T=32 frames of 224 px, K=4 crops
of 224 px, 128-bin log-mel up to 3000 frames, U_max=8, 2048 tokens). The paper config's tokenizers (LLaMA-2,
BERT) are large downloads; both settings use the demo tokenizers prepare trains on the corpus text, so the
tokenize share at paper settings is that of a small BPE (a LLaMA SentencePiece tokenizer is of the same
order per prompt). The demo clips are 160 px, so paper frames are upscaled: decode costs of real 720p video
come on top. Each clip yields two records (an EMER explanation and OV labels) from one decode; the numbers
count clips (videos).
"""
from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from microemo_jax.config import load_config  # noqa: E402
from microemo_jax.data.records import clip_processor as clip_mod  # noqa: E402
from microemo_jax.data.records.build import prepare  # noqa: E402
from microemo_jax.demo.corpus import write_corpus  # noqa: E402

PAPER_DATA = ['model.num_frames=32', 'model.video_qformer.max_frames=96', 'model.vision.image_size=224',
              'model.vision.patch_size=14',
              'model.micro_expression.num_crops=4', 'model.audio.num_mel_bins=128', 'data.max_mel_frames=3000',
              'model.max_utterances=8', 'data.max_seq_len=2048', 'model.frame_encoder.max_timestamp_tokens=16']

# stage -> (module object, attribute) pairs that prepare's ClipProcessor calls through
STAGES = {
    'decode': [(clip_mod.video_lib, 'decode_clip')],
    'faces': [(clip_mod.faces_lib, 'face_tubelets'), (clip_mod.faces_lib, 'load_openface_tubelets')],
    'audio': [(clip_mod.audio_lib, 'load_audio'), (clip_mod.audio_lib, 'log_mel')],
    'utterances': [(clip_mod.utterances_lib, 'find_utterances')],
    'tokenize': [(clip_mod.prompt_lib, 'build_prompt'), (clip_mod.prompt_lib, 'timestamp_token_ids')],
    'jpeg': [(clip_mod, '_jpeg')],
}


class StageTimer:
    """Wraps the stage functions (restored on exit) and sums the seconds spent in each."""

    def __init__(self):
        self.seconds = collections.Counter()
        self._saved = []

    def __enter__(self):
        for stage, targets in STAGES.items():
            for mod, attr in targets:
                fn = getattr(mod, attr)
                self._saved.append((mod, attr, fn))
                setattr(mod, attr, self._wrap(stage, fn))
        return self

    def _wrap(self, stage, fn):
        @functools.wraps(fn)
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds[stage] += time.perf_counter() - t
        return timed

    def __exit__(self, *exc):
        for mod, attr, fn in reversed(self._saved):
            setattr(mod, attr, fn)


def by_stage(cfg, raw: str, tok_dirs: tuple[str, str]) -> dict:
    clips, _ = clip_mod.sources_lib.read_source('folder', raw)
    settings = clip_mod.settings_from_config(cfg, 'folder', *tok_dirs)
    proc = clip_mod.ClipProcessor(settings)
    proc(clips[0])                                        # warm-up: lazy model loads (face mesh, VAD, ASR)
    proc._cache = None
    videos = set()
    with StageTimer() as timer:
        t0 = time.perf_counter()
        for clip in clips:
            proc(clip)
            videos.add(clip.video)
        total = time.perf_counter() - t0
    stages = dict(timer.seconds)
    stages['other'] = max(0.0, total - sum(stages.values()))
    return dict(videos=len(videos), records=len(clips), seconds=total, clips_per_s=len(videos) / total,
                stage_seconds=stages, stage_share={k: v / total for k, v in stages.items()})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--clips', type=int, default=8)
    parser.add_argument('--workers', type=int, default=1)
    parser.add_argument('--out', default=None, help='JSON file for the results')
    args = parser.parse_args(argv)
    root = tempfile.mkdtemp(prefix='prepare-bench-')
    results = []
    try:
        raw = os.path.join(root, 'raw')
        write_corpus(raw, args.clips, seed=0, workers=1, progress=False)
        for name, overrides in (('demo', []), ('paper sampling', PAPER_DATA)):
            cfg = load_config('configs/emer.py:demo', overrides)
            out = os.path.join(root, name.replace(' ', '_'))
            t0 = time.perf_counter()
            report = prepare(cfg, 'folder', raw, out, workers=args.workers)
            seconds = time.perf_counter() - t0
            tok = (os.path.join(out, 'tokenizers', 'llm_tokenizer'),       # the demo tokenizers prepare trained
                   os.path.join(out, 'tokenizers', 'qformer_tokenizer'))
            stages = by_stage(cfg, raw, tok)
            results.append(dict(setting=name, overrides=overrides, clips=args.clips, workers=args.workers,
                                records=report['written'], end_to_end_s=seconds,
                                clips_per_s_per_core=args.clips / seconds / args.workers,
                                bytes_per_record=report['bytes_per_sample'], by_stage=stages))
        print(f"\n{args.clips} demo clips; end to end with {args.workers} worker(s); stages in one process\n")
        names = list(STAGES) + ['other']
        print("| setting | records | end to end: clips/s per core | bytes/record | stage loop: clips/s | "
              + " | ".join(names) + " |")
        print("|---|---|---|---|---|" + "---|" * len(names))
        for r in results:
            share = r['by_stage']['stage_share']
            print(f"| {r['setting']} | {r['records']} | {r['clips_per_s_per_core']:.2f} | {r['bytes_per_record']} "
                  f"| {r['by_stage']['clips_per_s']:.2f} | " + " | ".join(f"{100 * share.get(n, 0):.0f} %" for n in names)
                  + " |")
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, 'w') as f:
                json.dump(dict(results=results, cpu_count=os.cpu_count(),
                               load_average_1_5_15min=[round(x, 2) for x in os.getloadavg()]), f, indent=2)
            print(f"wrote {args.out}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
