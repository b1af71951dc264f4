"""Turn a raw corpus into the pre-tokenized dataset that training streams (run once per corpus).

    python -m microemo_jax.prepare --source folder --raw DIR --out OUT \
        [--tokenizer LLM_TOKENIZER_DIR] [--qformer-tokenizer BERT_TOKENIZER_DIR] \
        [--config configs/emer.py:demo] [--workers N] [--shard-size 32] [--config.KEY=VALUE ...]

Per clip: decode and sample frames with their true timestamps, track the speaker's face and cut the
tubelets (or use the dataset's OpenFace crops), 16 kHz mono audio -> Whisper log-mel, utterance spans
(timed subtitles > utterance file > voice activity > whole clip), chat-template prompt tokenized with
the local tokenizers, loss mask on the answer. Clips are processed in shards by ``--workers``
processes; each finished shard is stored under OUT/work/, so a re-run only does the missing shards.
Then the records become a TFDS ArrayRecord dataset (OUT/tfds/...), with OUT/prepare_report.json and
OUT/skipped.jsonl accounting for every input: written, or skipped with its reason.

Without --tokenizer, small tokenizers are trained on the corpus text (OUT/tokenizers/) — right for the
demo corpus; for the paper model pass LLaMA-2's tokenizer and InstructBLIP's ``qformer_tokenizer``.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import pickle
import sys
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
from microemo_jax.data import tfds_builder
from microemo_jax.data import tokenizers as tokenizers_lib
from microemo_jax.data import utterances as utterances_lib
from microemo_jax.data import video as video_lib

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


def settings_from_config(cfg, source: str, llm_tokenizer: str, qformer_tokenizer: str) -> Settings:
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
                    qformer_tokenizer=qformer_tokenizer, seed=cfg.seed)


class ClipProcessor:
    """Raw clip -> record dict (see data/record.py), or a Skip with a specific reason."""

    def __init__(self, s: Settings):
        import cv2
        cv2.setNumThreads(1)  # parallelism comes from --workers
        self.s = s
        self.llm_tok = tokenizers_lib.load_tokenizer(s.llm_tokenizer, what='LLM')
        self.qf_tok = tokenizers_lib.load_tokenizer(s.qformer_tokenizer, what='Q-Former')
        self.detector = faces_lib.FaceDetector()
        self._cache = None

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
                   openset=json.dumps(list(clip.openset)) if clip.openset else '')
        record_lib.check_record(rec)
        return rec


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
                                                     tubelet_length=s.num_crops, crop_size=s.face_size)
        else:
            tubes = faces_lib.face_tubelets(decoded, self.detector, crop_size=s.face_size)
        sound = audio_lib.load_audio(clip.audio_file or clip.video)
        mel = audio_lib.log_mel(sound.waveform, num_mel_bins=s.num_mel_bins, max_frames=s.max_mel_frames)
        utts, utt_source = utterances_lib.find_utterances(
            duration, subtitle_path=clip.subtitle_file, utterance_path=clip.utterance_file,
            waveform=sound.waveform if sound.has_audio else None, max_utterances=s.max_utterances)
        ts_ids, ts_mask = prompt_lib.timestamp_token_ids(self.qf_tok, decoded.timestamps, s.timestamp_tokens)
        frames_blob, frame_offsets = record_lib.join_jpegs([_jpeg(f, s.jpeg_quality) for f in decoded.frames])
        crops = [_jpeg(tubes.faces[i, k], s.jpeg_quality) for i, k in zip(*np.nonzero(tubes.face_mask))]
        faces_blob, face_offsets = record_lib.join_jpegs(crops)
        media = dict(
            timestamps=np.asarray(decoded.timestamps, np.float32), frames_jpeg=frames_blob,
            frame_offsets=frame_offsets, faces_jpeg=faces_blob, face_offsets=face_offsets,
            face_mask=np.asarray(tubes.face_mask, bool), face_boxes=np.asarray(tubes.boxes, np.float32),
            audio_mel=np.ascontiguousarray(mel.T).astype(np.float16),
            utterances=np.asarray([[u.start, u.end] for u in utts], np.float32).reshape(-1, 2),
            utterance_source=utt_source, utterance_texts=[(u.start, u.end, u.text) for u in utts],
            timestamp_ids=np.asarray(ts_ids, np.int32), timestamp_mask=np.asarray(ts_mask, np.int32))
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


# ---------------------------------------------------------------- shards and workers
_PROCESSOR: ClipProcessor | None = None


def _init_worker(settings: Settings) -> None:
    global _PROCESSOR
    _PROCESSOR = ClipProcessor(settings)


def _process_shard(job):
    index, clips, path = job
    records, skips = [], []
    for clip in clips:
        out = _PROCESSOR(clip)
        (skips if isinstance(out, sources_lib.Skip) else records).append(out)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        pickle.dump({'names': [c.name for c in clips], 'records': records,
                     'skips': [dataclasses.asdict(s) for s in skips]}, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)  # atomic: a shard file exists only when complete
    return index, len(clips)


def _shard_done(path: str, names: list[str]) -> bool:
    if not os.path.isfile(path):
        return False
    try:
        with open(path, 'rb') as f:
            return pickle.load(f)['names'] == names
    except Exception:  # a damaged shard is redone
        return False


def run_shards(clips, settings: Settings, work_dir: str, *, workers: int, shard_size: int) -> dict:
    """Process clips in shards (resuming finished ones); returns counts of done/redone shards."""
    os.makedirs(work_dir, exist_ok=True)
    clips = sorted(clips, key=lambda c: c.name)
    shards = [clips[i:i + shard_size] for i in range(0, len(clips), shard_size)]
    expected = {f'shard-{i:05d}.pkl' for i in range(len(shards))}
    for stale in set(os.listdir(work_dir)) - expected:  # shards of a larger earlier corpus
        if stale.startswith('shard-'):
            os.remove(os.path.join(work_dir, stale))
    jobs = []
    for i, shard in enumerate(shards):
        path = os.path.join(work_dir, f'shard-{i:05d}.pkl')
        if not _shard_done(path, [c.name for c in shard]):
            jobs.append((i, shard, path))
    todo = sum(len(j[1]) for j in jobs)
    bar = tqdm(total=todo, desc='prepare', unit='clip', disable=todo == 0)
    if workers <= 1:
        _init_worker(settings)
        for job in jobs:
            bar.update(_process_shard(job)[1])
    elif jobs:
        with mp.get_context('spawn').Pool(workers, initializer=_init_worker, initargs=(settings,)) as pool:
            for _, n in pool.imap_unordered(_process_shard, jobs):
                bar.update(n)
    bar.close()
    return {'shards': len(shards), 'shards_processed': len(jobs), 'shards_resumed': len(shards) - len(jobs)}


def collect(work_dir: str):
    records_bytes, written, skips = [], [], []
    for path in sorted(p for p in os.listdir(work_dir) if p.startswith('shard-') and p.endswith('.pkl')):
        with open(os.path.join(work_dir, path), 'rb') as f:
            shard = pickle.load(f)
        for rec in shard['records']:
            written.append(rec['name'])
            records_bytes.append(sum(np.asarray(v).nbytes if not isinstance(v, str) else len(v.encode())
                                     for v in rec.values()))
        skips += [sources_lib.Skip(**s) for s in shard['skips']]
    return written, skips, records_bytes


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


def prepare(cfg, source: str, raw: str, out: str, *, tokenizer=None, qformer_tokenizer=None, workers=1,
            shard_size=32) -> dict:
    t0 = time.time()
    os.makedirs(out, exist_ok=True)
    clips, source_skips = sources_lib.read_source(source, raw)
    args = argparse.Namespace(tokenizer=tokenizer, qformer_tokenizer=qformer_tokenizer)
    llm_dir, qf_dir, tok_how = ensure_tokenizers(args, clips, out, cfg)
    check_vocab(cfg, llm_dir, qf_dir)
    settings = settings_from_config(cfg, source, llm_dir, qf_dir)
    work = os.path.join(out, 'work')
    shard_stats = run_shards(clips, settings, work, workers=workers, shard_size=shard_size)
    written, process_skips, sizes = collect(work)
    skips = source_skips + process_skips
    with open(os.path.join(out, 'skipped.jsonl'), 'w') as f:
        for s in skips:
            f.write(json.dumps({'name': s.name, 'reason': s.reason}, ensure_ascii=False) + '\n')
    splits = Counter(tfds_builder.split_of(n, cfg.data.validation_fraction) for n in written)
    report = {
        'source': source, 'raw': os.path.abspath(raw), 'dataset_dir': tfds_builder.dataset_dir(out),
        'seen': len(written) + len(skips), 'written': len(written), 'skipped': len(skips),
        'skipped_by_reason': dict(Counter(s.reason.split(':', 1)[0] for s in skips)),
        'written_names': sorted(written), 'splits': dict(splits),
        'bytes_per_sample': int(np.mean(sizes)) if sizes else 0,
        'tokenizers': {'llm': llm_dir, 'qformer': qf_dir, 'how': tok_how},
        'config': {'variant': cfg.variant, 'num_frames': settings.num_frames, 'frame_size': settings.frame_size,
                   'num_crops': settings.num_crops, 'max_seq_len': settings.max_seq_len,
                   'num_video_tokens': settings.num_video_tokens, 'num_audio_tokens': settings.num_audio_tokens},
        **shard_stats, 'seconds': round(time.time() - t0, 2),
    }
    with open(os.path.join(out, 'prepare_report.json'), 'w') as f:  # written before the dataset: also on failure
        json.dump(report, f, indent=2, ensure_ascii=False)
    tfds_builder.build(out, num_crops=settings.num_crops, timestamp_tokens=settings.timestamp_tokens,
                       num_mel_bins=settings.num_mel_bins, validation_fraction=cfg.data.validation_fraction,
                       description=f'{source} corpus from {raw}')
    return report


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == '--config' or a.startswith('--config=') for a in argv):
        argv = ['--config', os.path.join(os.path.dirname(__file__), '..', 'configs', 'emer.py') + ':demo'] + argv
    parser = argparse.ArgumentParser(prog='python -m microemo_jax.prepare', description=__doc__.split('\n')[0])
    parser.add_argument('--source', required=True, choices=SOURCES)
    parser.add_argument('--raw', required=True, help='folder of the raw corpus')
    parser.add_argument('--out', required=True, help='output folder (re-running resumes)')
    parser.add_argument('--tokenizer', help='Hugging Face tokenizer folder of the LLM')
    parser.add_argument('--qformer-tokenizer', dest='qformer_tokenizer',
                        help='BERT tokenizer folder of the image Q-Former (default: TOKENIZER/qformer_tokenizer)')
    parser.add_argument('--workers', type=int, default=max(1, (os.cpu_count() or 2) - 0))
    parser.add_argument('--shard-size', dest='shard_size', type=int, default=32)
    try:
        cfg, rest = config_from_argv(argv)
    except ConfigError as e:
        parser.error(str(e))
    args = parser.parse_args(rest)
    if not os.path.isdir(args.raw):
        parser.error(f"--raw {args.raw} is not a folder")
    try:
        report = prepare(cfg, args.source, args.raw, args.out, tokenizer=args.tokenizer,
                         qformer_tokenizer=args.qformer_tokenizer, workers=args.workers, shard_size=args.shard_size)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(json.dumps({k: v for k, v in report.items() if k != 'written_names'}, indent=2, ensure_ascii=False))


if __name__ == '__main__':
    main()
