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
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import csv
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections import Counter

import numpy as np
from tqdm import tqdm

from microemo_jax.batch import token_budget
from microemo_jax.config import ConfigError, config_from_argv
from microemo_jax.data import audio as audio_lib
from microemo_jax.data import faces as faces_lib
from microemo_jax.data import prompt as prompt_lib
from microemo_jax.data import record as record_lib
from microemo_jax.data import sources as sources_lib
from microemo_jax.data import speech as speech_lib
from microemo_jax.data import tfds_builder
from microemo_jax.data import tokenizers as tokenizers_lib
from microemo_jax.data import utterances as utterances_lib
from microemo_jax.data import video as video_lib
from microemo_jax.lock import DirLock, LockHeld

SOURCES = ('emer_v1', 'emer_v2', 'mer_ov', 'mer2025', 'folder')


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a worker needs to process clips (picklable; tokenizers are loaded once per worker)."""
    source: str
    num_frames: int
    frame_size: int
    face_size: int
    num_crops: int
    timestamp_tokens: int
    num_mel_bins: int
    max_mel_frames: int
    max_utterances: int
    max_seq_len: int
    num_video_tokens: int
    num_audio_tokens: int
    sampling: str
    question: str
    require_faces: bool
    jpeg_quality: int
    llm_tokenizer: str
    qformer_tokenizer: str
    seed: int
    timestamp_tokenizer: str = 'bert'   # model.frame_encoder.timestamp_tokenizer: which one tokenizes the timestamps
    face_detector: str = 'blazeface'    # data.face_detector: faces.make_detector's name
    align_faces: bool = True            # data.align_faces: warp crops onto canonical eye/mouth points
    asr: str = 'none'                   # --asr: 'none' | 'pocketsphinx' | 'whisper:/abs/path' (data/speech.py)
    vad: str = 'silero'                 # the voice-activity detector that runs here: 'silero' | 'energy'
    mel_window: int = 0                 # model.audio.pad_to_30s: the encoder window the extractor pads to (frames)


def settings_from_config(cfg, source: str, llm_tokenizer: str, qformer_tokenizer: str, *,
                         asr: str | None = None) -> Settings:
    """``asr``: an ``--asr`` value (None: pocketsphinx when installed, else none; see data/speech.py)."""
    m, d = cfg.model, cfg.data
    video_tokens, audio_tokens = token_budget(m)
    me = m.micro_expression
    return Settings(source=source, num_frames=m.num_frames, frame_size=m.vision.image_size,
                    face_size=me.face_vision.image_size if me.face_encoder == 'separate' else m.vision.image_size,
                    num_crops=me.num_crops, timestamp_tokens=m.frame_encoder.max_timestamp_tokens,
                    num_mel_bins=m.audio.num_mel_bins, max_mel_frames=d.max_mel_frames,
                    max_utterances=m.max_utterances, max_seq_len=d.max_seq_len, num_video_tokens=video_tokens,
                    num_audio_tokens=audio_tokens, sampling=d.sampling, question=d.question,
                    require_faces=d.require_faces, jpeg_quality=d.jpeg_quality, llm_tokenizer=llm_tokenizer,
                    qformer_tokenizer=qformer_tokenizer, seed=cfg.seed,
                    timestamp_tokenizer=m.frame_encoder.timestamp_tokenizer,
                    face_detector=d.get('face_detector', 'blazeface'), align_faces=bool(d.get('align_faces', True)),
                    asr=speech_lib.default_asr() if asr is None else speech_lib.parse_asr(asr),
                    vad=speech_lib.vad_detector(),
                    mel_window=2 * m.audio.max_source_positions if m.audio.get('pad_to_30s', False) else 0)


class ClipProcessor:
    """Raw clip -> record dict (see data/record.py), or a Skip with a specific reason.

    The record also carries ``prompt_shortened`` (which prompt parts were cut to fit ``max_seq_len``:
    'speech', 'subtitle', 'answer'), which prepare counts and does not store."""

    def __init__(self, s: Settings):
        import cv2
        cv2.setNumThreads(1)  # parallelism comes from --workers
        self.s = s
        self.llm_tok = tokenizers_lib.load_tokenizer(s.llm_tokenizer, what='LLM')
        self.qf_tok = tokenizers_lib.load_tokenizer(s.qformer_tokenizer, what='Q-Former')
        self.detector = faces_lib.make_detector(s.face_detector)
        self._cache = None
        self.asr = speech_lib.lazy_asr(s.asr)  # the recognizer loads on first use, once per worker

    def __call__(self, clip: sources_lib.RawClip):
        try:
            return self._process(clip)
        except Exception as e:  # every failure becomes a recorded skip, never a lost clip
            reason = getattr(e, 'reason', None) or type(e).__name__
            return sources_lib.Skip(clip.name, f"{reason}: {e}")

    def _process(self, clip):
        s = self.s
        if clip.video is None:
            return sources_lib.Skip(clip.name, 'video_missing: no video file for this clip')
        media = self._media(clip)
        if s.require_faces and not media['face_mask'].any():
            return sources_lib.Skip(clip.name, 'no_face: no face found in any sampled frame '
                                               '(data.require_faces is set)')
        question = clip.question or prompt_lib.question_for(s.question)  # unlabeled clips: the config's question
        answer = clip.answer
        prompt = prompt_lib.build_prompt(
            self.llm_tok, timestamps=media['timestamps'], utterances=media['utterance_texts'],
            subtitle=clip.subtitle, question=question, answer=answer, num_video_tokens=s.num_video_tokens,
            num_audio_tokens=s.num_audio_tokens, max_len=s.max_seq_len)
        rec = {k: v for k, v in media.items() if k != 'utterance_texts'}
        rec.update(name=clip.name, source=s.source, input_ids=np.asarray(prompt.input_ids, np.int32),
                   loss_mask=np.asarray(prompt.loss_mask, bool),
                   modality_positions=np.asarray(prompt.modality_positions, np.int32),
                   subtitle=clip.subtitle or '', answer=answer or '',
                   openset=json.dumps(list(clip.openset)) if clip.openset else '',
                   prompt_shortened=tuple(prompt.shortened))  # not stored: prepare counts the cut answers
        record_lib.check_record(rec)
        return rec


    def media(self, clip) -> dict:
        """The decoded media of a clip (frames, faces, audio, utterances with their texts), as ``__call__``
        used them; ``predict`` shows them beside the explanation."""
        return self._media(clip)

    def _media(self, clip) -> dict:
        """Everything a clip's video, audio and subtitles give, cached for the clip's other targets
        (a MER2025 or labels.csv name with both a description and OV labels shares one video)."""
        key = (clip.video, clip.audio_file, clip.faces_npy, clip.subtitle_file, clip.utterance_file)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        s = self.s
        rng = np.random.default_rng(_name_seed(s.seed, os.path.basename(clip.video)))
        decoded = video_lib.decode_clip(clip.video, s.num_frames, frame_size=s.frame_size, mode=s.sampling, rng=rng,
                                        tubelet_length=s.num_crops)
        duration = float(decoded.info.duration)
        if clip.faces_npy:
            tubes = faces_lib.load_openface_tubelets(clip.faces_npy, decoded.timestamps, duration,
                                                     tubelet_length=s.num_crops, crop_size=s.face_size,
                                                     mesh=faces_lib.default_mesh())
        else:
            tubes = faces_lib.face_tubelets(decoded, self.detector, crop_size=s.face_size, align=s.align_faces)
        sound = audio_lib.load_audio(clip.audio_file or clip.video)
        mel = audio_lib.clip_log_mel(sound.waveform, num_mel_bins=s.num_mel_bins, max_frames=s.max_mel_frames,
                                     window_frames=s.mel_window)
        utts, utt_source = utterances_lib.find_utterances(
            duration, subtitle_path=clip.subtitle_file, utterance_path=clip.utterance_file,
            waveform=sound.waveform if sound.has_audio else None, max_utterances=s.max_utterances, vad=s.vad,
            asr=self.asr)
        ts_tok = prompt_lib.timestamp_tokenizer(s.timestamp_tokenizer, qformer_tokenizer=self.qf_tok,
                                                llm_tokenizer=self.llm_tok)
        ts_ids, ts_mask = prompt_lib.timestamp_token_ids(ts_tok, decoded.timestamps, s.timestamp_tokens)
        frames_blob, frame_offsets = record_lib.join_jpegs([_jpeg(f, s.jpeg_quality) for f in decoded.frames])
        crops = [_jpeg(tubes.faces[i, k], s.jpeg_quality) for i, k in zip(*np.nonzero(tubes.face_mask))]
        faces_blob, face_offsets = record_lib.join_jpegs(crops)
        media = dict(
            timestamps=np.asarray(decoded.timestamps, np.float32), frames_jpeg=frames_blob,
            frame_offsets=frame_offsets, faces_jpeg=faces_blob, face_offsets=face_offsets,
            face_mask=np.asarray(tubes.face_mask, bool), face_boxes=np.asarray(tubes.boxes, np.float32),
            face_landmarks=np.asarray(tubes.landmarks, np.float16),
            face_landmark_mask=np.asarray(tubes.landmark_mask, bool),
            audio_mel=np.ascontiguousarray(mel.T).astype(np.float16),
            utterances=np.asarray([[u.start, u.end] for u in utts], np.float32).reshape(-1, 2),
            utterance_source=utt_source, utterance_texts=[(u.start, u.end, u.text) for u in utts],
            timestamp_ids=np.asarray(ts_ids, np.int32), timestamp_mask=np.asarray(ts_mask, np.int32),
            timestamp_tokenizer=s.timestamp_tokenizer)
        self._cache = (key, media)
        return media


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    import cv2
    ok, buf = cv2.imencode('.jpg', np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError('JPEG encoding failed')
    return buf.tobytes()


def _name_seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f'{seed}:{name}'.encode()).digest()[:8], 'big')


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
    return {'name': clip.name, 'inputs': _digest(inputs), 'label': _digest(label)}


def _tree_digest(path: str) -> str:
    """Digest of every file under ``path`` (names and bytes): a tokenizer's identity, wherever it lies."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            h.update(os.path.relpath(full, path).encode() + b'\0')
            with open(full, 'rb') as f:
                for block in iter(lambda: f.read(1 << 20), b''):
                    h.update(block)
    return h.hexdigest()


def settings_identity(s: Settings) -> dict:
    """The settings that shape the records, with each tokenizer by its content rather than its path."""
    d = dataclasses.asdict(s)
    for key in ('llm_tokenizer', 'qformer_tokenizer'):
        d[key] = _tree_digest(d[key]) if os.path.isdir(d[key]) else d[key]
    d['asr'] = speech_lib.asr_identity(s.asr)
    d['shard_format'] = tfds_builder.SHARD_FORMAT
    return d


def _shard_key(settings_digest: str, clips: list[dict]) -> str:
    return _digest({'settings': settings_digest, 'clips': clips})


# ---------------------------------------------------------------- shards and workers
_PROCESSOR: ClipProcessor | None = None


def _init_worker(settings: Settings) -> None:
    global _PROCESSOR
    _PROCESSOR = ClipProcessor(settings)


def _process_shard(job):
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
        if current and len(current) >= shard_size and tfds_builder.video_of(clip.name) != \
                tfds_builder.video_of(current[-1].name):
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


def run_shards(clips, settings: Settings, work_dir: str, *, workers: int,
               shard_size: int, runner: str = 'local', beam_options: str = '') -> tuple[dict, list[tfds_builder.Shard]]:
    """Process clips in shards, reusing each finished shard whose key (the settings and each input's identity)
    is unchanged and redoing the others; returns (counts and what changed, the index of all shards).
    ``runner='beam'``: the pending shards run as an Apache Beam pipeline (``prepare_beam.py``)."""
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
            os.remove(os.path.join(work_dir, stale))

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
        why += [f"{k.replace('_', ' ')}: {_names(v)}" for k, v in changes.items() if v]
        print(f"prepare: redoing {redone} finished shard(s) of {work_dir} made from other inputs: "
              + ('; '.join(why) or 'their shard was made by another version of prepare'), file=sys.stderr, flush=True)
    todo = sum(len(j[1]) for j in jobs)
    bar = tqdm(total=todo, desc='prepare', unit='clip', disable=todo == 0 or runner == 'beam')
    if runner == 'beam':
        if jobs:
            from microemo_jax import prepare_beam
            prepare_beam.run_jobs(jobs, settings, beam_options)
        for job in jobs:
            i = job[0]
            done = tfds_builder.read_shard_meta(work_dir, i)
            if done is None or done.key != job[3]:
                raise RuntimeError(f"the Beam pipeline finished without writing work shard {i} to {work_dir}: "
                                   f"is the work folder shared with the Beam workers?")
            index[i] = done
    elif workers <= 1:
        if jobs:
            _init_worker(settings)
        for job in jobs:
            i, n, meta = _process_shard(job)
            index[i] = tfds_builder.Shard(tfds_builder.shard_paths(work_dir, i)[0], meta)
            bar.update(n)
    elif jobs:
        with mp.get_context('spawn').Pool(min(workers, len(jobs)), initializer=_init_worker,
                                          initargs=(settings,)) as pool:
            for i, n, meta in pool.imap_unordered(_process_shard, jobs):
                index[i] = tfds_builder.Shard(tfds_builder.shard_paths(work_dir, i)[0], meta)
                bar.update(n)
    bar.close()
    with open(settings_path + '.tmp', 'w', encoding='utf-8') as f:
        json.dump(sid, f, indent=1)
    os.replace(settings_path + '.tmp', settings_path)
    stats = {'shards': len(shards), 'shards_processed': len(jobs), 'shards_resumed': len(shards) - len(jobs),
             'shards_redone': redone,
             'redone_because': ({'settings_changed': settings_changed, **changes} if redone else {}),
             'legacy_pickle_shards_removed': legacy}
    return stats, [index[i] for i in range(len(shards))]


def _names(names: list[str], limit: int = 5) -> str:
    shown = ', '.join(repr(n) for n in names[:limit])
    return shown + (f' and {len(names) - limit} more' if len(names) > limit else '')


# ---------------------------------------------------------------- splits
def assign_splits(names: list[str], *, validation_fraction: float, split_file: str | None = None,
                  corpus_names: list[str] = ()) -> tuple[dict[str, str], dict]:
    """Record name -> split, by video (all targets of a video together), and the account of how.

    With ``split_file`` its videos get its split; a written video absent from it gets the hashed default
    (train/validation by ``validation_fraction``); names in it that the corpus lacks are reported."""
    info = {'by': 'video', 'validation_fraction': validation_fraction, 'split_file': None,
            'default': f'stable hash of the video name: {validation_fraction:g} of the videos in validation, '
                       f'the rest in train'}
    given = sources_lib.read_split_file(split_file) if split_file else {}
    assignment, unlisted = {}, set()
    for name in names:
        key = sources_lib.video_key(name)
        if key in given:
            assignment[name] = given[key][0]
        else:
            assignment[name] = tfds_builder.split_of(name, validation_fraction)
            unlisted.add(tfds_builder.video_of(name))
    if split_file:
        corpus = {sources_lib.video_key(n) for n in corpus_names} | {sources_lib.video_key(n) for n in names}
        written = {sources_lib.video_key(n) for n in names}
        missing = sorted(v for v in given if v not in corpus)
        not_written = sorted(v for v in given if v in corpus and v not in written)
        info['split_file'] = {
            'path': os.path.abspath(split_file), 'videos': len(given),
            'not_in_corpus': {'count': len(missing), 'examples': missing[:20]},
            'in_corpus_but_skipped': {'count': len(not_written), 'examples': not_written[:20]},
            'not_in_split_file': {'count': len(unlisted), 'examples': sorted(unlisted)[:20],
                                  'assigned': 'the default split (' + info['default'] + ')'}}
        for what, items, tail in (('name(s) in the split file are not in the corpus', missing, ''),
                                  ('written video(s) are not in the split file', sorted(unlisted),
                                   ': they get the default hashed train/validation split')):
            if items:
                print(f"warning: {len(items)} {what} ({_names(items)}){tail}", file=sys.stderr, flush=True)
    tfds_builder.check_by_video(assignment)
    by_split: dict[str, list[str]] = {}
    for name, split in assignment.items():
        by_split.setdefault(split, []).append(name)
    info['records'] = {s: len(by_split[s]) for s in tfds_builder.SPLITS if s in by_split}
    info.update(tfds_builder.split_overlap(by_split))
    return assignment, info


# ---------------------------------------------------------------- entry point
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
    shard_stats, index = run_shards(clips, settings, work, workers=workers, shard_size=shard_size, runner=runner,
                                    beam_options=beam_options)
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
    if cut['answer']:
        print(f"warning: {len(cut['answer'])} answer(s) were cut to fit data.max_seq_len={settings.max_seq_len} "
              f"({_names(cut['answer'])}): raise data.max_seq_len to train on them whole", file=sys.stderr, flush=True)
    with open(os.path.join(out, 'splits.csv'), 'w', encoding='utf-8', newline='') as f:
        w = csv.writer(f)
        w.writerow(['name', 'split'])
        for video, split in sorted({(tfds_builder.video_of(n), s) for n, s in assignment.items()}):
            w.writerow([video, split])
    report = {
        'source': source, 'raw': os.path.abspath(raw), 'dataset_dir': tfds_builder.dataset_dir(out),
        'seen': len(written) + len(skips), 'written': len(written), 'skipped': len(skips),
        'skipped_by_reason': dict(Counter(s.reason.split(':', 1)[0] for s in skips)),
        'written_names': sorted(written), 'splits': dict(Counter(assignment.values())), 'split': split_info,
        'bytes_per_sample': int(np.mean([r['nbytes'] for r in records])) if records else 0,
        'prompts_shortened': {
            'max_seq_len': settings.max_seq_len, 'answers_cut': len(cut['answer']),
            'answers_cut_examples': cut['answer'][:20], 'subtitles_cut': len(cut['subtitle']),
            'speech_cut': len(cut['speech'])},
        'tokenizers': {'llm': llm_dir, 'qformer': qf_dir, 'how': tok_how},
        'speech': {'asr': settings.asr, 'vad': settings.vad,
                   'utterance_sources': dict(Counter(r['utterance_source'] for r in records))},
        'config': {'variant': cfg.variant, 'num_frames': settings.num_frames, 'frame_size': settings.frame_size,
                   'num_crops': settings.num_crops, 'max_seq_len': settings.max_seq_len,
                   'num_video_tokens': settings.num_video_tokens, 'num_audio_tokens': settings.num_audio_tokens},
        **shard_stats, 'seconds': round(time.time() - t0, 2),
    }
    with open(os.path.join(out, 'prepare_report.json'), 'w') as f:  # written before the dataset: also on failure
        json.dump(report, f, indent=2, ensure_ascii=False)
    tfds_builder.build(out, num_crops=settings.num_crops, timestamp_tokens=settings.timestamp_tokens,
                       num_mel_bins=settings.num_mel_bins, assignment=assignment, index=index,
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
