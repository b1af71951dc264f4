"""Turn a raw corpus into the pre-tokenized dataset that training streams (run once per corpus).

    python -m microemo_jax.prepare --source folder --raw DIR --out OUT \
        [--tokenizer LLM_TOKENIZER_DIR] [--qformer-tokenizer BERT_TOKENIZER_DIR] [--split-file SPLITS.csv] \
        [--config configs/emer.py:demo] [--workers N] [--shard-size 32] [--config.KEY=VALUE ...]
        [--asr whisper:PATH | pocketsphinx | none]

Per clip: decode and sample frames with their true timestamps, track the speaker's face and cut the
tubelets (or use the dataset's OpenFace crops), 16 kHz mono audio -> Whisper log-mel, utterances
{start, end, text} (timed subtitles > utterance file > ``--asr`` speech recognition on the voiced spans >
voice activity (Silero VAD) > whole clip; ``data/speech.py``; the default ASR is pocketsphinx), chat-template
prompt tokenized with the local tokenizers, loss mask on the answer. Clips are processed in shards by ``--workers``
processes; each finished shard is stored under OUT/work/ (arrays in an .npz read without pickle, text in
a JSON sidecar) with a key of what produced it: the settings (tokenizers by content) and each input's
identity (path, size, mtime, its label row). A re-run reuses the shards whose key is unchanged and redoes
the others, saying which and why (stderr and the report). One run at a time per OUT (OUT/.lock names the
holder; a lock whose process is gone is taken over).

Splits are by video: all records of one video (``NAME``, ``NAME#ov``) share a split. ``--split-file``
(``name,split`` with train/validation/test) gives an official split; videos it does not list get the
default, a stable hash of the video name (``data.validation_fraction`` to validation, the rest to train).
Then the records become a TFDS ArrayRecord dataset (OUT/tfds/...), with OUT/prepare_report.json (counts,
the split and how it was made, cut answers, what was redone), OUT/splits.csv (video, split) and
OUT/skipped.jsonl accounting for every input: written, or skipped with its reason.

Without --tokenizer, small tokenizers are trained on the corpus text (OUT/tokenizers/) — right for the
demo corpus; for the paper model pass LLaMA-2's tokenizer and InstructBLIP's ``qformer_tokenizer``.

The work is the library's: ``data/clip_processor.py`` (one clip -> one record), ``data/work_shards.py``
(shards, their keys, workers), ``data/splits.py`` (the split), ``data/tfds_builder.py`` (shard files and the
dataset); this module is the command line and the report.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from collections import Counter

import numpy as np

from microemo_jax.config import ConfigError, config_from_argv
from microemo_jax.data import prompt as prompt_lib
from microemo_jax.data import sources as sources_lib
from microemo_jax.data import speech as speech_lib
from microemo_jax.data import tfds_builder
from microemo_jax.data import tokenizers as tokenizers_lib
from microemo_jax.data.clip_processor import settings_from_config
from microemo_jax.data.splits import assign_splits, names_preview, write_splits_csv
from microemo_jax.data.work_shards import run_shards
from microemo_jax.lock import DirLock, LockHeld

SOURCES = ('emer_v1', 'emer_v2', 'mer_ov', 'mer2025', 'folder')


def ensure_tokenizers(args, clips, out: str, cfg) -> tuple[str, str, str]:
    """(LLM tokenizer dir, Q-Former tokenizer dir, how they were obtained)."""
    if args.tokenizer:
        qf = args.qformer_tokenizer or os.path.join(args.tokenizer, 'qformer_tokenizer')
        if not os.path.isdir(qf):
            raise ConfigError(f"--qformer-tokenizer is needed (no {qf}); InstructBLIP checkpoints ship one in "
                              f"their qformer_tokenizer/ folder")
        return args.tokenizer, qf, 'given'
    tok_dir = os.path.join(out, 'tokenizers')
    texts = [t for c in clips for t in (c.subtitle, c.reason or '', ' '.join(c.openset or []))] + [
        prompt_lib.DESCRIPTION_QUESTION, prompt_lib.OV_QUESTION,
        ' '.join(prompt_lib.timestamp_sentences(np.arange(0, 60, 0.1)))]
    llm_dir, qf_dir = tokenizers_lib.train_demo_tokenizers(texts, tok_dir, llm_vocab_size=cfg.model.llm.vocab_size,
                                                           qformer_vocab_size=cfg.model.image_qformer.vocab_size)
    return llm_dir, qf_dir, 'trained on the corpus text'


def check_vocab(cfg, llm_dir: str, qf_dir: str) -> None:
    for what, path, size, key in (('LLM', llm_dir, cfg.model.llm.vocab_size, 'model.llm.vocab_size'),
                                  ('Q-Former', qf_dir, cfg.model.image_qformer.vocab_size,
                                   'model.image_qformer.vocab_size')):
        n = len(tokenizers_lib.load_tokenizer(path, what=what))
        if n > size:
            raise ConfigError(f"the {what} tokenizer at {path} has {n} tokens but {key}={size}")


class PrepareError(ValueError):
    """A bad argument or output folder: one line naming the flag or path."""


def check_out(out: str) -> None:
    """``--out`` must be a folder this process can write (created if missing)."""
    if os.path.lexists(out) and not os.path.isdir(out):
        raise PrepareError(f"--out {out} exists and is not a folder: pass a folder (new or from an earlier prepare)")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise PrepareError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    try:
        fd, probe = tempfile.mkstemp(prefix='.write-test-', dir=out)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise PrepareError(f"--out {out} is not writable ({e.strerror})") from None


def prepare(cfg, source: str, raw: str, out: str, *, tokenizer=None, qformer_tokenizer=None, workers=1,
            shard_size=32, split_file: str | None = None, asr: str | None = None, runner: str = 'local',
            beam_options: str = '') -> dict:
    if runner not in ('local', 'beam'):
        raise PrepareError(f"--runner must be 'local' or 'beam', got {runner!r}")
    if shard_size < 1:
        raise PrepareError(f"--shard-size must be at least 1, got {shard_size}")
    if workers < 1:
        raise PrepareError(f"--workers must be at least 1, got {workers}")
    if split_file is not None and not os.path.isfile(split_file):
        raise PrepareError(f"--split-file {split_file} is not a file")
    asr = speech_lib.parse_asr(asr) if asr is not None else None  # a bad --asr fails before any work
    check_out(out)
    with DirLock(out, 'prepare output folder'):
        return _prepare(cfg, source, raw, out, tokenizer=tokenizer, qformer_tokenizer=qformer_tokenizer,
                        workers=workers, shard_size=shard_size, split_file=split_file, asr=asr, runner=runner,
                        beam_options=beam_options)


def _prepare(cfg, source, raw, out, *, tokenizer, qformer_tokenizer, workers, shard_size, split_file,
             asr=None, runner='local', beam_options='') -> dict:
    t0 = time.time()
    clips, source_skips = sources_lib.read_source(source, raw)
    args = argparse.Namespace(tokenizer=tokenizer, qformer_tokenizer=qformer_tokenizer)
    llm_dir, qf_dir, tok_how = ensure_tokenizers(args, clips, out, cfg)
    check_vocab(cfg, llm_dir, qf_dir)
    settings = settings_from_config(cfg, source, llm_dir, qf_dir, asr=asr)
    work = os.path.join(out, 'work')
    run_jobs = None
    if runner == 'beam':
        from microemo_jax import prepare_beam
        run_jobs = functools.partial(prepare_beam.run_jobs, beam_options=beam_options)
    shard_stats, index = run_shards(clips, settings, work, workers=workers, shard_size=shard_size, run_jobs=run_jobs)
    records = [r for shard in index for r in shard.records]
    written = [r['name'] for r in records]
    skips = source_skips + [sources_lib.Skip(**s) for shard in index for s in shard.skips]
    with open(os.path.join(out, 'skipped.jsonl'), 'w') as f:
        for s in skips:
            f.write(json.dumps({'name': s.name, 'reason': s.reason}, ensure_ascii=False) + '\n')
    assignment, split_info = assign_splits(written, validation_fraction=cfg.data.validation_fraction,
                                           split_file=split_file,
                                           corpus_names=[c.name for c in clips] + [s.name for s in skips])
    cut = {part: sorted(r['name'] for r in records if part in r.get('prompt_shortened', ()))
           for part in ('answer', 'subtitle', 'speech')}
    shapes = settings.shapes
    if cut['answer']:
        print(f"warning: {len(cut['answer'])} answer(s) were cut to fit data.max_seq_len={shapes.seq_len} "
              f"({names_preview(cut['answer'])}): raise data.max_seq_len to train on them whole",
              file=sys.stderr, flush=True)
    write_splits_csv(os.path.join(out, 'splits.csv'), assignment)
    report = {
        'source': source, 'raw': os.path.abspath(raw), 'dataset_dir': tfds_builder.dataset_dir(out),
        'seen': len(written) + len(skips), 'written': len(written), 'skipped': len(skips),
        'skipped_by_reason': dict(Counter(s.reason.split(':', 1)[0] for s in skips)),
        'written_names': sorted(written), 'splits': dict(Counter(assignment.values())), 'split': split_info,
        'bytes_per_sample': int(np.mean([r['nbytes'] for r in records])) if records else 0,
        'prompts_shortened': {
            'max_seq_len': shapes.seq_len, 'answers_cut': len(cut['answer']),
            'answers_cut_examples': cut['answer'][:20], 'subtitles_cut': len(cut['subtitle']),
            'speech_cut': len(cut['speech'])},
        'tokenizers': {'llm': llm_dir, 'qformer': qf_dir, 'how': tok_how},
        'speech': {'asr': settings.asr, 'vad': settings.vad,
                   'utterance_sources': dict(Counter(r['utterance_source'] for r in records))},
        'config': {'variant': cfg.variant, 'num_frames': shapes.num_frames, 'frame_size': shapes.image_size,
                   'num_crops': shapes.num_crops, 'max_seq_len': shapes.seq_len,
                   'num_video_tokens': shapes.video_tokens, 'num_audio_tokens': shapes.audio_tokens},
        **shard_stats, 'seconds': round(time.time() - t0, 2),
    }
    with open(os.path.join(out, 'prepare_report.json'), 'w') as f:  # written before the dataset: also on failure
        json.dump(report, f, indent=2, ensure_ascii=False)
    tfds_builder.build(out, num_crops=shapes.num_crops, timestamp_tokens=shapes.timestamp_tokens,
                       num_mel_bins=shapes.num_mel_bins, assignment=assignment, index=index,
                       description=f'{source} corpus from {raw}')
    return report


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == '--config' or a.startswith('--config=') for a in argv):
        argv = ['--config', os.path.join(os.path.dirname(__file__), '..', 'configs', 'emer.py') + ':demo'] + argv
    parser = argparse.ArgumentParser(prog='python -m microemo_jax.prepare', description=__doc__.split('\n')[0])
    parser.add_argument('--source', required=True, choices=SOURCES)
    parser.add_argument('--raw', required=True, help='folder of the raw corpus')
    parser.add_argument('--out', required=True, help='output folder (a re-run redoes only what changed)')
    parser.add_argument('--tokenizer', help='Hugging Face tokenizer folder of the LLM')
    parser.add_argument('--qformer-tokenizer', dest='qformer_tokenizer',
                        help='BERT tokenizer folder of the image Q-Former (default: TOKENIZER/qformer_tokenizer)')
    parser.add_argument('--workers', type=int, default=max(1, (os.cpu_count() or 2) - 0))
    parser.add_argument('--shard-size', dest='shard_size', type=int, default=32)
    parser.add_argument('--split-file', dest='split_file',
                        help='CSV with columns name,split (train/validation/test): an official split, by video; '
                             'videos it does not list get the default hashed train/validation split')
    parser.add_argument('--asr', help="speech recognition for clips without subtitles or an utterance file: "
                                      "whisper:PATH (a Hugging Face Whisper folder), pocketsphinx (the default when "
                                      "installed), or none (voice-activity spans only)")
    parser.add_argument('--runner', default='local', choices=('local', 'beam'),
                        help="local: --workers processes on this machine; beam: an Apache Beam pipeline (the extra "
                             "environment `make beam-venv` builds), the runner and its options from --beam-options")
    parser.add_argument('--beam-options', dest='beam_options', default='',
                        help="Beam pipeline options as one string, given with '=' since it starts with dashes: "
                             "--beam-options=\"--runner=FlinkRunner --flink_master=host:8081\" (default: the "
                             "DirectRunner)")
    try:
        cfg, rest = config_from_argv(argv)
    except ConfigError as e:
        parser.error(str(e))
    args = parser.parse_args(rest)
    if not os.path.isdir(args.raw):
        sys.exit(f"error: --raw {args.raw} is not a folder")
    try:
        report = prepare(cfg, args.source, args.raw, args.out, tokenizer=args.tokenizer,
                         qformer_tokenizer=args.qformer_tokenizer, workers=args.workers, shard_size=args.shard_size,
                         split_file=args.split_file, asr=args.asr, runner=args.runner,
                         beam_options=args.beam_options)
    except (ConfigError, LockHeld, FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    except OSError as e:
        sys.exit(f"error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}")
    print(json.dumps({k: v for k, v in report.items() if k != 'written_names'}, indent=2, ensure_ascii=False))


if __name__ == '__main__':
    main()
