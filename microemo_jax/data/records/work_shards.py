"""Work shards: prepare processes clips shard by shard and keeps each finished shard under ``OUT/work/``, keyed
on what produced it, so an interrupted or changed run redoes only what is missing or stale.

A shard's key digests the settings (tokenizers by content, the ASR by identity) and each input's identity
(path, size, mtime, its label row). ``run_shards`` reuses the shards whose key is unchanged, redoes the
others saying which and why (stderr and the report), and runs the pending ones in ``--workers`` processes
or through a given runner (``prepare --runner beam``: ``prepare_beam.run_jobs``). The shard files
themselves (npz read without pickle, JSON sidecar) are ``data/records/tfds_builder.py``'s.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import sys
from typing import Callable

from tqdm import tqdm

from microemo_jax.data.raw import sources as sources_lib
from microemo_jax.data.raw.splits import names_preview, video_of
from microemo_jax.data.records import tfds_builder
from microemo_jax.data.records.clip_processor import ClipProcessor, Settings
from microemo_jax.data.speech import asr as asr_lib
from microemo_jax.data.tokenizers import tokenizer_identity
from microemo_jax.safe_paths import inside, remove_inside


# ---------------------------------------------------------------- what produced a shard
def _file_identity(path: str | None):
    """(absolute path, size, mtime in ns) of an input file; None when the clip has no such file."""
    if path is None:
        return None
    try:
        st = os.stat(path)
        return [os.path.abspath(path), st.st_size, st.st_mtime_ns]
    except OSError as e:
        return [os.path.abspath(path), None, e.strerror]


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def clip_identity(clip: sources_lib.RawClip) -> dict:
    """What a clip's records are made from: its input files' identity and its label row (each as a digest)."""
    inputs = {attr: _file_identity(getattr(clip, attr))
              for attr in ('video', 'subtitle_file', 'utterance_file', 'audio_file', 'faces_npy')}
    label = {'answer_kind': clip.answer_kind, 'reason': clip.reason, 'openset': clip.openset,
             'emotion': clip.emotion, 'subtitle': clip.subtitle}
    if clip.ask or clip.segment is not None or clip.crop is not None:   # the question; the span of a longer video
        label.update(ask=clip.ask, segment=clip.segment, crop=clip.crop)
    return {'name': clip.name, 'inputs': _digest(inputs), 'label': _digest(label)}


# DataShapes field -> its key in the identity: the names shapes had before DataShapes, so the keys (and the
# shards of work folders made then) stay the same
_IDENTITY_NAMES = {'image_size': 'frame_size', 'mel_frames': 'max_mel_frames', 'seq_len': 'max_seq_len',
                   'video_tokens': 'num_video_tokens', 'audio_tokens': 'num_audio_tokens'}


def settings_identity(s: Settings) -> dict:
    """The settings that shape the records, with each tokenizer by its content rather than its path; flat, so
    a changed shape is named by itself when shards are redone."""
    d = dataclasses.asdict(s)
    d = {**{_IDENTITY_NAMES.get(k, k): v for k, v in d.pop('shapes').items()}, **d}
    for key in ('llm_tokenizer', 'qformer_tokenizer'):
        d[key] = tokenizer_identity(d[key]) if os.path.isdir(d[key]) else d[key]
    d['asr'] = asr_lib.asr_identity(s.asr)
    d['shard_format'] = tfds_builder.SHARD_FORMAT
    return d


def _shard_key(settings_digest: str, clips: list[dict]) -> str:
    return _digest({'settings': settings_digest, 'clips': clips})


# ---------------------------------------------------------------- shards and workers
_PROCESSOR: ClipProcessor | None = None


def init_worker(settings: Settings) -> None:
    """Build this process's ClipProcessor (once per worker: it loads tokenizers and models)."""
    global _PROCESSOR
    _PROCESSOR = ClipProcessor(settings)


def process_shard(job):
    """Process one job's clips with this worker's ClipProcessor and write their shard: (index, clips, sidecar)."""
    index, clips, work_dir, key, identities = job
    records, skips = [], []
    for clip in clips:
        out = _PROCESSOR(clip)
        (skips if isinstance(out, sources_lib.Skip) else records).append(out)
    shard = tfds_builder.write_shard(work_dir, index, key=key, records=records,
                                     skips=[dataclasses.asdict(s) for s in skips], clips=identities)
    return index, len(clips), shard.meta


def partition(clips: list, shard_size: int) -> list[list]:
    """Clips in name order, in shards of about ``shard_size``; a video's targets never straddle two shards
    (the video is decoded once for all of them)."""
    shards, current = [], []
    for clip in sorted(clips, key=lambda c: c.name):
        if current and len(current) >= shard_size and video_of(clip.name) != video_of(current[-1].name):
            shards.append(current)
            current = []
        current.append(clip)
    if current:
        shards.append(current)
    return shards


def _why_redone(old: dict, new: list[dict]) -> dict:
    """Which clips of a redone shard changed since it was made: inputs, labels, or the shard's members."""
    before = {c['name']: c for c in old.get('clips', [])}
    after = {c['name']: c for c in new}
    return {'inputs_changed': sorted(n for n in after if n in before and before[n]['inputs'] != after[n]['inputs']),
            'labels_changed': sorted(n for n in after if n in before and before[n]['label'] != after[n]['label']),
            'clips_added': sorted(set(after) - set(before)), 'clips_removed': sorted(set(before) - set(after))}


def _settings_diff(old: dict | None, new: dict) -> dict:
    if old is None:
        return {}
    return {k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


def run_shards(clips, settings: Settings, work_dir: str, *, workers: int, shard_size: int,
               run_jobs: Callable[[list, Settings], None] | None = None) -> tuple[dict, list[tfds_builder.Shard]]:
    """Process clips in shards, reusing each finished shard whose key (the settings and each input's identity)
    is unchanged and redoing the others; returns (counts and what changed, the index of all shards).
    ``run_jobs(jobs, settings)``: runs the pending jobs elsewhere (each through ``init_worker`` and
    ``process_shard``, e.g. ``prepare --runner beam``), writing their shards into ``work_dir``."""
    if shard_size < 1:
        raise ValueError(f"--shard-size must be at least 1, got {shard_size}")
    os.makedirs(work_dir, exist_ok=True)
    shards = partition(clips, shard_size)
    sid = settings_identity(settings)
    settings_digest = _digest(sid)
    settings_path = os.path.join(work_dir, 'settings.json')
    try:
        with open(settings_path, encoding='utf-8') as f:
            old_settings = json.load(f)
    except (OSError, ValueError):
        old_settings = None
    settings_changed = _settings_diff(old_settings, sid)

    expected = {os.path.basename(p) for i in range(len(shards)) for p in tfds_builder.shard_paths(work_dir, i)}
    legacy = 0
    for stale in sorted(set(os.listdir(work_dir)) - expected):  # a larger earlier corpus, temporaries, old formats
        if stale.startswith('shard-'):
            legacy += stale.endswith('.pkl')  # an old pickle shard is deleted unread: loading it could run code
            remove_inside(work_dir, stale)

    jobs, index, changes = [], {}, {'inputs_changed': [], 'labels_changed': [], 'clips_added': [],
                                    'clips_removed': []}
    redone = 0
    for i, shard in enumerate(shards):
        identities = [clip_identity(c) for c in shard]
        key = _shard_key(settings_digest, identities)
        done = tfds_builder.read_shard_meta(work_dir, i)
        if done is not None and done.key == key:
            index[i] = done
            continue
        if done is not None:
            redone += 1
            for k, names in _why_redone(done.meta, identities).items():
                changes[k] += names
        jobs.append((i, shard, work_dir, key, identities))
    if redone:
        why = []
        if settings_changed:
            tok = {'llm_tokenizer', 'qformer_tokenizer'} & set(settings_changed)
            why.append('the settings changed (' + ', '.join(
                [f'{k}: {a} -> {b}' for k, (a, b) in settings_changed.items() if k not in tok]
                + [f'{k.replace("_", " ")} content' for k in sorted(tok)]) + ')')
        why += [f"{k.replace('_', ' ')}: {names_preview(v)}" for k, v in changes.items() if v]
        print(f"prepare: redoing {redone} finished shard(s) of {work_dir} made from other inputs: "
              + ('; '.join(why) or 'their shard was made by another version of prepare'), file=sys.stderr, flush=True)
    todo = sum(len(j[1]) for j in jobs)
    bar = tqdm(total=todo, desc='prepare', unit='clip', disable=todo == 0 or run_jobs is not None)
    if run_jobs is not None:
        if jobs:
            run_jobs(jobs, settings)
        for job in jobs:
            i = job[0]
            done = tfds_builder.read_shard_meta(work_dir, i)
            if done is None or done.key != job[3]:
                raise RuntimeError(f"the runner finished without writing work shard {i} to {work_dir}: "
                                   f"is the work folder shared with its workers?")
            index[i] = done
    elif workers <= 1:
        if jobs:
            init_worker(settings)
        for job in jobs:
            i, n, meta = process_shard(job)
            index[i] = tfds_builder.Shard(tfds_builder.shard_paths(work_dir, i)[0], meta)
            bar.update(n)
    elif jobs:
        with mp.get_context('spawn').Pool(min(workers, len(jobs)), initializer=init_worker,
                                          initargs=(settings,)) as pool:
            for i, n, meta in pool.imap_unordered(process_shard, jobs):
                index[i] = tfds_builder.Shard(tfds_builder.shard_paths(work_dir, i)[0], meta)
                bar.update(n)
    bar.close()
    with open(inside(work_dir, 'settings.json.tmp'), 'w', encoding='utf-8') as f:
        json.dump(sid, f, indent=1)
    os.replace(settings_path + '.tmp', settings_path)
    stats = {'shards': len(shards), 'shards_processed': len(jobs), 'shards_resumed': len(shards) - len(jobs),
             'shards_redone': redone,
             'redone_because': ({'settings_changed': settings_changed, **changes} if redone else {}),
             'legacy_pickle_shards_removed': legacy}
    return stats, [index[i] for i in range(len(shards))]
