"""A raw corpus -> the prepared dataset: tokenizers, work shards, the split, the report, the TFDS folder.

The library side of ``python -m microemo_jax.prepare`` (whose docstring tells the whole story), also used
by the demo's first-use preparation. Per-clip work is ``clip_processor``; shards, their keys and workers
are ``work_shards``; the split is ``data/raw/splits.py``; the dataset is ``tfds_builder``.
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

from microemo_jax.config import ConfigError
from microemo_jax.data import demo_tokenizers, prompt as prompt_lib, tokenizers as tokenizers_lib
from microemo_jax.data.raw import bench as bench_lib, sources as sources_lib
from microemo_jax.data.raw.splits import assign_splits, names_preview, write_splits_csv
from microemo_jax.data.records import beam as beam_runner, tfds_builder
from microemo_jax.data.records.clip_processor import settings_from_config
from microemo_jax.data.records.work_shards import run_shards
from microemo_jax.data.speech import asr as asr_lib
from microemo_jax.data.tokenizer_identity import identities
from microemo_jax.lock import DirLock
from microemo_jax.safe_paths import inside


def ensure_tokenizers(args, clips, out: str, cfg) -> tuple[str, str, str]:
    """(LLM tokenizer dir, Q-Former tokenizer dir, how they were obtained)."""
    if args.tokenizer:
        qf = args.qformer_tokenizer or os.path.join(args.tokenizer, 'qformer_tokenizer')
        if not os.path.isdir(qf):
            raise ConfigError(f"--qformer-tokenizer is needed (no {qf}); InstructBLIP checkpoints ship one in "
                              f"their qformer_tokenizer/ folder")
        return args.tokenizer, qf, 'given'
    tok_dir = inside(out, 'tokenizers')
    texts = [t for c in clips for t in (c.subtitle, c.reason or '', ' '.join(c.openset or []))] + [
        prompt_lib.DESCRIPTION_QUESTION, prompt_lib.OV_QUESTION,
        ' '.join(prompt_lib.timestamp_sentences(np.arange(0, 60, 0.1)))]
    llm_dir, qf_dir = demo_tokenizers.train_demo_tokenizers(
        texts, tok_dir, llm_vocab_size=cfg.model.llm.vocab_size, qformer_vocab_size=cfg.model.image_qformer.vocab_size,
        style=cfg.data.get('demo_tokenizer', 'llama'))
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
    asr = asr_lib.parse_asr(asr) if asr is not None else None  # a bad --asr fails before any work
    check_out(out)
    with DirLock(out, 'prepare output folder'):
        return _prepare(cfg, source, raw, out, tokenizer=tokenizer, qformer_tokenizer=qformer_tokenizer,
                        workers=workers, shard_size=shard_size, split_file=split_file, asr=asr, runner=runner,
                        beam_options=beam_options)


def _prepare(cfg, source, raw, out, *, tokenizer, qformer_tokenizer, workers, shard_size, split_file,
             asr=None, runner='local', beam_options='') -> dict:
    t0 = time.time()
    bench = None
    if source in bench_lib.BENCH_SOURCES:  # MER-UniBench: its test set, its question, its gold file
        bench = bench_lib.read_bench(source, raw, question=bench_lib.question_kind(cfg.data))
        clips, source_skips = bench.clips, bench.skips
        bench_lib.write_gold(out, bench)
    else:
        clips, source_skips = sources_lib.read_source(source, raw)
    args = argparse.Namespace(tokenizer=tokenizer, qformer_tokenizer=qformer_tokenizer)
    llm_dir, qf_dir, tok_how = ensure_tokenizers(args, clips, out, cfg)
    check_vocab(cfg, llm_dir, qf_dir)
    settings = settings_from_config(cfg, source, llm_dir, qf_dir, asr=asr)
    work = inside(out, 'work')   # every path under --out goes through safe_paths: a planted link is refused
    run_jobs = None
    if runner == 'beam':
        run_jobs = functools.partial(beam_runner.run_jobs, beam_options=beam_options)
    shard_stats, index = run_shards(clips, settings, work, workers=workers, shard_size=shard_size, run_jobs=run_jobs)
    records = [r for shard in index for r in shard.records]
    written = [r['name'] for r in records]
    skips = source_skips + [sources_lib.Skip(**s) for shard in index for s in shard.skips]
    with open(inside(out, 'skipped.jsonl'), 'w') as f:
        for s in skips:
            f.write(json.dumps({'name': s.name, 'reason': s.reason}, ensure_ascii=False) + '\n')
    assignment, split_info = assign_splits(written, validation_fraction=cfg.data.validation_fraction,
                                           split_file=split_file,
                                           corpus_names=[c.name for c in clips] + [s.name for s in skips],
                                           official={c.name: c.split for c in clips if c.split})
    cut = {part: sorted(r['name'] for r in records if part in r.get('prompt_shortened', ()))
           for part in ('answer', 'subtitle', 'speech')}
    shapes = settings.shapes
    if cut['answer']:
        print(f"warning: {len(cut['answer'])} answer(s) were cut to fit data.max_seq_len={shapes.seq_len} "
              f"({names_preview(cut['answer'])}): raise data.max_seq_len to train on them whole",
              file=sys.stderr, flush=True)
    write_splits_csv(inside(out, 'splits.csv'), assignment)
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
        'tokenizers': {'llm': llm_dir, 'qformer': qf_dir, 'how': tok_how,
                       'identity': identities(llm_dir, qf_dir)},  # what train, evaluate and params folders compare
        'speech': {'asr': settings.asr, 'vad': settings.vad,
                   'utterance_sources': dict(Counter(r['utterance_source'] for r in records))},
        'config': {'variant': cfg.variant, 'num_frames': shapes.num_frames, 'frame_size': shapes.image_size,
                   'num_crops': shapes.num_crops, 'max_seq_len': shapes.seq_len,
                   'num_video_tokens': shapes.video_tokens, 'num_audio_tokens': shapes.audio_tokens},
        **shard_stats, 'seconds': round(time.time() - t0, 2),
    }
    if bench is not None:
        report['benchmark'] = bench_lib.account(bench, written)
    with open(inside(out, 'prepare_report.json'), 'w') as f:  # written before the dataset: also on failure
        json.dump(report, f, indent=2, ensure_ascii=False)
    tfds_builder.build(out, num_crops=shapes.num_crops, timestamp_tokens=shapes.timestamp_tokens,
                       num_mel_bins=shapes.num_mel_bins, assignment=assignment, index=index,
                       description=f'{source} corpus from {raw}')
    return report
