"""The embedded demo corpus: talking-face clips whose emotion is carried by face, micro-expression, voice and words.

    python -m microemo_jax.demo.corpus --out DIR --num 200 --seed 0 [--size 160] [--workers 2]
                                            [--speech auto|espeak|synthetic] [--global-frames 8]

writes a ``folder``-layout corpus that ``python -m microemo_jax.prepare --source folder --raw DIR`` reads:

* ``DIR/NAME.mp4`` and ``DIR/NAME.srt``: a talking face with an expression, sometimes a micro-expression,
  speech and its subtitles (``demo.clip``), following the clip's script (``demo.script``: a fixed cycle of
  scenarios in which each branch of the model carries label information the others do not always carry).
* ``DIR/labels.csv``: ``name, openset, reason``; openset as in MER (``"['angry', 'annoyed']"``), the reason an
  EMER-style explanation ("In the video, ... In the audio, ... In the text, ... Therefore, ...") written
  from the clip's hidden truth, describing each modality's clue.
* ``DIR/corpus.json``: seed, num, generator version, speech engine, the global frame count and, per clip,
  the hidden truth: ``name``, ``scenario``, ``emotion`` (the label), the displayed expression and onset,
  ``micro`` (null unless the label depends on a micro-expression; else its emotion, ``frames`` (count),
  ``start_frame``, ``frame_indices``, ``start``/``end`` seconds), ``global_frames`` (the frames a model
  sampling that many frames may show, which the micro-expression avoids), prosody emotion, text
  emotion/sentiment, utterance times. For checking the corpus and joining scores by scenario; training
  never reads it.

Speech (``demo.tts``): espeak-ng with per-emotion pitch/speed/amplitude when it is on PATH, else a
synthetic source-filter voice whose pitch level and movement, rate, loudness and voice quality follow the
prosody emotion. Subtitles are the spoken sentences, drawn from small per-emotion templates.

Deterministic: clip i depends only on (seed, i) (and the speech engine), encoders run single-threaded with
fixed settings, so the same seed gives byte-identical files, and the clips of a corpus of N are the first N
clips of a larger one.
"""
from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import cv2
from tqdm import tqdm

from microemo_jax.demo import clip as demo_clip, script, tts

# 2: micro-expressions of 3-6 frames placed between the global frames, a quarter of the clips micro scenarios,
#    clips[].global_frames and micro.frame_indices in corpus.json
GENERATOR_VERSION = 2


def resolve_engine(speech: str) -> str:
    """'synthetic' or the espeak-ng path for --speech auto|espeak|synthetic."""
    if speech == 'synthetic':
        return 'synthetic'
    exe = tts.espeak_available()
    if speech == 'espeak' and exe is None:
        raise RuntimeError("--speech espeak: espeak-ng is not on PATH (install it, e.g. `apt install espeak-ng`, or "
                           "use --speech synthetic)")
    if speech not in ('auto', 'espeak'):
        raise ValueError(f"--speech must be auto, espeak or synthetic, got {speech!r}")
    return exe or 'synthetic'


def _job(args):
    return demo_clip.make_clip(*args)


def _init_worker():
    cv2.setNumThreads(1)          # one process per core already


def _prepare_out_dir(out_dir: str) -> None:
    """Create ``out_dir``; an old demo corpus there is removed first (its clips would linger as extra videos)."""
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        old = os.path.join(out_dir, 'corpus.json')
        if not os.path.isfile(old):
            raise FileExistsError(f"{out_dir} is not empty and holds no demo corpus (corpus.json): choose a new or "
                                  f"empty folder")
        with open(old, encoding='utf-8') as f:
            names = [c['name'] for c in json.load(f).get('clips', [])]
        for name in names:
            for ext in ('.mp4', '.srt'):
                path = os.path.join(out_dir, name + ext)
                if os.path.isfile(path):
                    os.remove(path)
        for name in ('labels.csv', 'corpus.json'):
            if os.path.isfile(os.path.join(out_dir, name)):
                os.remove(os.path.join(out_dir, name))
    os.makedirs(out_dir, exist_ok=True)


def write_corpus(out_dir: str, num: int, seed: int = 0, *, size: int = 160, workers: int = 1,
                 speech: str = 'auto', progress: bool = True, global_frames: int = script.GLOBAL_FRAMES) -> dict:
    """Generate ``num`` clips into ``out_dir`` (see the module doc); returns the corpus.json content.
    ``global_frames``: the model's ``model.num_frames`` (uniform sampling), which micro-expressions avoid."""
    if num < 1:
        raise ValueError(f"--num must be >= 1, got {num}")
    if global_frames < 1:
        raise ValueError(f"--global-frames must be >= 1, got {global_frames}")
    if size < 64 or size % 2:
        raise ValueError(f"--size must be even and >= 64, got {size}")
    engine = resolve_engine(speech)
    _prepare_out_dir(out_dir)
    jobs = [(out_dir, seed, i, size, engine, global_frames) for i in range(num)]

    bar = tqdm(total=num, desc='demo corpus', unit='clip', disable=not progress, file=sys.stderr)
    clips = []
    if workers <= 1:
        for job in jobs:
            clips.append(_job(job))
            bar.update()
    else:

        with ProcessPoolExecutor(min(workers, num), mp_context=multiprocessing.get_context('spawn'),
                                 initializer=_init_worker) as pool:
            for truth in pool.map(_job, jobs, chunksize=1):
                clips.append(truth)
                bar.update()
    bar.close()
    with open(os.path.join(out_dir, 'labels.csv'), 'w', encoding='utf-8', newline='') as f:
        writer = csv.writer(f, lineterminator='\n')
        writer.writerow(['name', 'openset', 'reason'])
        for c in clips:
            writer.writerow([c['name'], repr([str(x) for x in c['openset']]), c['reason']])
    corpus = {
        'generator': 'microemo_jax.demo.corpus', 'version': GENERATOR_VERSION, 'seed': seed, 'num': num,
        'size': size, 'fps': script.FPS, 'sample_rate': demo_clip.SAMPLE_RATE, 'global_frames': global_frames,
        'speech_engine': 'synthetic' if engine == 'synthetic' else tts.espeak_version(engine),
        'scenario_cycle': list(script.SCENARIO_CYCLE), 'clips': clips,
    }
    with open(os.path.join(out_dir, 'corpus.json'), 'w', encoding='utf-8') as f:
        json.dump(corpus, f, indent=1, sort_keys=True)
        f.write('\n')
    return corpus


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='python -m microemo_jax.demo.corpus', description=__doc__.split('\n')[0])
    ap.add_argument('--out', required=True, help='output folder (folder layout: NAME.mp4, NAME.srt, labels.csv)')
    ap.add_argument('--num', type=int, default=200, help='number of clips')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--size', type=int, default=160, help='frame size in pixels (square, even, >= 64)')
    ap.add_argument('--workers', type=int, default=min(os.cpu_count() or 1, 8), help='processes')
    ap.add_argument('--speech', default='auto', choices=('auto', 'espeak', 'synthetic'),
                    help='espeak-ng when installed (auto), or the synthetic voice')
    ap.add_argument('--global-frames', dest='global_frames', type=int, default=script.GLOBAL_FRAMES,
                    help="frames the model samples per clip (model.num_frames): micro-expressions fall between them")
    ap.add_argument('--quiet', action='store_true', help='no progress bar')
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    corpus = write_corpus(args.out, args.num, args.seed, size=args.size, workers=args.workers, speech=args.speech,
                          progress=not args.quiet, global_frames=args.global_frames)
    dt = time.perf_counter() - t0
    print(f"wrote {args.num} clips to {args.out} in {dt:.1f} s ({args.num / dt:.1f} clips/s, "
          f"speech: {corpus['speech_engine']})", file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
