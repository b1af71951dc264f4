"""The embedded demo corpus: talking-face clips whose emotion is carried by face, micro-expression, voice and words.

    python -m microemo_jax.demo.corpus --out DIR --num 200 --seed 0 [--size 160] [--workers 2]
                                            [--speech auto|espeak|synthetic] [--global-frames 8] [--groups-only]

writes a ``folder``-layout corpus that ``python -m microemo_jax.prepare --source folder --raw DIR`` reads
(``--groups-only``: only groups.csv, for the corpus already in DIR):

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
* ``DIR/groups.csv``: ``name, group, micro`` for ``evaluate --groups``: the clip's scenario, and ``micro`` when
  its label depends on a micro-expression (``micro`` is not null in corpus.json), else ``other``.
  ``write_groups(DIR)`` writes it for a corpus made before this file existed.

Speech (``demo.tts``): espeak-ng with per-emotion pitch/speed/amplitude when it is on PATH, else a
synthetic source-filter voice whose pitch level and movement, rate, loudness and voice quality follow the
prosody emotion. Subtitles are the spoken sentences, drawn from small per-emotion templates.

Deterministic: clip i depends only on (seed, i) (and the speech engine), encoders run single-threaded with
fixed settings, so the same seed gives byte-identical files, and the clips of a corpus of N are the first N
clips of a larger one.
"""
from __future__ import annotations

import csv
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import cv2
from tqdm import tqdm

from microemo_jax import cli_checks
from microemo_jax.csv_cells import escape_row
from microemo_jax.demo import clip as demo_clip, script, tts
from microemo_jax.safe_paths import inside, remove_inside, unsafe_name_reason

# 2: micro-expressions of 3-6 frames placed between the global frames, a quarter of the clips micro scenarios,
#    clips[].global_frames and micro.frame_indices in corpus.json
GENERATOR_VERSION = 2
GROUPS_FILE = 'groups.csv'


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


def _old_clip_names(path: str) -> list[str]:
    """The clip names an old ``corpus.json`` lists, each checked to be one safe file name (all before any delete)."""
    try:
        with open(path, encoding='utf-8') as f:
            clips = json.load(f).get('clips', [])
        names = [c['name'] for c in clips]
    except (OSError, ValueError, AttributeError, TypeError, KeyError) as e:
        raise ValueError(f"{path} is not a demo corpus description ({type(e).__name__}: {e}); refused, nothing "
                         f"deleted: choose a new or empty folder") from None
    for name in names:
        why = unsafe_name_reason(name)
        if why:
            raise ValueError(f"{path} names a clip {name!r} that {why}; refused, nothing deleted (a demo corpus "
                             f"only deletes its own files inside --out)")
    return names


def _prepare_out_dir(out_dir: str) -> None:
    """Create ``out_dir``; an old demo corpus there is removed first (its clips would linger as extra videos).
    Only the files its corpus.json names inside ``out_dir`` are deleted (``safe_paths``), never anything outside."""
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        old = inside(out_dir, 'corpus.json')
        if not os.path.isfile(old):
            raise FileExistsError(f"{out_dir} is not empty and holds no demo corpus (corpus.json): choose a new or "
                                  f"empty folder")
        for name in _old_clip_names(old):
            for ext in ('.mp4', '.srt'):
                remove_inside(out_dir, name + ext)
        for name in ('labels.csv', 'corpus.json', GROUPS_FILE):
            remove_inside(out_dir, name)
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
    with open(inside(out_dir, 'labels.csv'), 'w', encoding='utf-8', newline='') as f:
        writer = csv.writer(f, lineterminator='\n')
        writer.writerow(['name', 'openset', 'reason'])
        for c in clips:
            writer.writerow(escape_row([c['name'], repr([str(x) for x in c['openset']]), c['reason']]))
    corpus = {
        'generator': 'microemo_jax.demo.corpus', 'version': GENERATOR_VERSION, 'seed': seed, 'num': num,
        'size': size, 'fps': script.FPS, 'sample_rate': demo_clip.SAMPLE_RATE, 'global_frames': global_frames,
        'speech_engine': 'synthetic' if engine == 'synthetic' else tts.espeak_version(engine),
        'scenario_cycle': list(script.SCENARIO_CYCLE), 'clips': clips,
    }
    with open(inside(out_dir, 'corpus.json'), 'w', encoding='utf-8') as f:
        json.dump(corpus, f, indent=1, sort_keys=True)
        f.write('\n')
    _write_groups_csv(inside(out_dir, GROUPS_FILE), clips)
    return corpus


def _write_groups_csv(path: str, clips: list[dict]) -> None:
    with open(path, 'w', encoding='utf-8', newline='') as f:
        writer = csv.writer(f, lineterminator='\n')
        writer.writerow(['name', 'group', 'micro'])
        for c in clips:
            writer.writerow(escape_row([c['name'], c['scenario'], 'other' if c.get('micro') is None else 'micro']))


def write_groups(raw_dir: str, path: str | None = None) -> str:
    """Write the groups file of the demo corpus in ``raw_dir`` (from its corpus.json) to ``path`` (default
    ``raw_dir/groups.csv``); returns the path."""
    source = os.path.join(raw_dir, 'corpus.json')
    if not os.path.isfile(source):
        raise FileNotFoundError(f"{raw_dir}: no corpus.json; is it a demo corpus made by "
                                f"`python -m microemo_jax.demo.corpus`?")
    with open(source, encoding='utf-8') as f:
        clips = json.load(f)['clips']
    path = path or os.path.join(raw_dir, GROUPS_FILE)
    _write_groups_csv(path, clips)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = cli_checks.Parser(prog='python -m microemo_jax.demo.corpus', description=__doc__.split('\n')[0])
    ap.add_argument('--out', required=True, type=cli_checks.out_dir,
                    help='output folder (folder layout: NAME.mp4, NAME.srt, labels.csv)')
    ap.add_argument('--num', type=cli_checks.positive_int, default=200, help='number of clips')
    ap.add_argument('--seed', type=cli_checks.nonneg_int, default=0)
    ap.add_argument('--size', type=cli_checks.even_int_at_least(64), default=160,
                    help='frame size in pixels (square, even, >= 64)')
    ap.add_argument('--workers', type=cli_checks.positive_int, default=min(os.cpu_count() or 1, 8), help='processes')
    ap.add_argument('--speech', default='auto', choices=('auto', 'espeak', 'synthetic'),
                    help='espeak-ng when installed (auto), or the synthetic voice')
    ap.add_argument('--global-frames', dest='global_frames', type=cli_checks.positive_int, default=script.GLOBAL_FRAMES,
                    help="frames the model samples per clip (model.num_frames): micro-expressions fall between them")
    ap.add_argument('--quiet', action='store_true', help='no progress bar')
    ap.add_argument('--groups-only', dest='groups_only', action='store_true',
                    help=f'only (re)write {GROUPS_FILE} of the corpus already in --out')
    args = ap.parse_args(argv)
    if args.groups_only:
        try:
            print(f"wrote {write_groups(args.out)}", file=sys.stderr)
        except FileNotFoundError as e:
            sys.exit(f'error: {e}')
        return 0

    t0 = time.perf_counter()
    try:
        corpus = write_corpus(args.out, args.num, args.seed, size=args.size, workers=args.workers,
                              speech=args.speech, progress=not args.quiet, global_frames=args.global_frames)
    except (OSError, ValueError, RuntimeError) as e:   # a busy or hostile --out, no espeak-ng: one line
        cli_checks.fail(e)
    dt = time.perf_counter() - t0
    print(f"wrote {args.num} clips to {args.out} in {dt:.1f} s ({args.num / dt:.1f} clips/s, "
          f"speech: {corpus['speech_engine']})", file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
