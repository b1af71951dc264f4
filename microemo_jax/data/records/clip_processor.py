"""One raw clip -> one prepared record: decode and sample frames, face tubelets, log-mel audio, utterances,
the tokenized prompt (``data/records/record.py`` is the record's schema).

``Settings`` is everything a worker process needs (picklable; the static shapes are one ``DataShapes``);
``ClipProcessor`` loads the tokenizers, face detector and speech recognizer once per worker and turns
each clip into a record, or into a ``Skip`` with a specific reason: a clip is never silently lost.
``prepare`` runs it over a corpus (``data/records/work_shards.py``); ``predict`` runs it on the videos it explains.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile

import cv2
import numpy as np

from microemo_jax.data import prompt as prompt_lib, tokenizers as tokenizers_lib, video as video_lib
from microemo_jax.data.faces import spotting, tubelets as faces_lib
from microemo_jax.data.faces.detector import make_detector
from microemo_jax.data.raw import segments as segments_lib, sources as sources_lib
from microemo_jax.data.records import record as record_lib
from microemo_jax.data.shapes import DataShapes
from microemo_jax.data.speech import asr as asr_lib, decode as audio_lib, utterances as utterances_lib, vad as vad_lib


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a worker needs to process clips (picklable; tokenizers are loaded once per worker)."""
    source: str
    shapes: DataShapes                  # frames, crops, mel, utterances, prompt length and placeholders
    sampling: str
    question: str
    require_faces: bool
    jpeg_quality: int
    llm_tokenizer: str
    qformer_tokenizer: str
    seed: int
    face_detector: str = 'blazeface'    # data.face_detector: face_detector.make_detector's name
    align_faces: bool = True            # data.align_faces: warp crops onto canonical eye/mouth points
    asr: str = 'none'                   # --asr: 'none' | 'pocketsphinx' | 'whisper:/abs/path' (data/speech/asr.py)
    vad: str = 'silero'                 # the voice-activity detector that runs here: 'silero' | 'energy'
    mel_window: int = 0                 # model.audio.pad_to_30s: the encoder window the extractor pads to (frames)
    tubelets: str = 'anchor'            # model.micro_expression.tubelets: 'anchor' (tubelets start at the global
                                        # frames) or 'apex' (at each interval's peak of facial motion: spotting.py)


def settings_from_config(cfg, source: str, llm_tokenizer: str, qformer_tokenizer: str, *,
                         asr: str | None = None) -> Settings:
    """``asr``: an ``--asr`` value (None: pocketsphinx when installed, else none; see data/speech/asr.py)."""
    m, d = cfg.model, cfg.data
    return Settings(source=source, shapes=DataShapes.from_config(cfg), sampling=d.sampling, question=d.question,
                    require_faces=d.require_faces, jpeg_quality=d.jpeg_quality, llm_tokenizer=llm_tokenizer,
                    qformer_tokenizer=qformer_tokenizer, seed=cfg.seed,
                    face_detector=d.get('face_detector', 'blazeface'), align_faces=bool(d.get('align_faces', True)),
                    asr=asr_lib.default_asr() if asr is None else asr_lib.parse_asr(asr),
                    vad=vad_lib.vad_detector(),
                    mel_window=2 * m.audio.max_source_positions if m.audio.get('pad_to_30s', False) else 0,
                    tubelets=m.micro_expression.get('tubelets', 'anchor'))


class ClipProcessor:
    """Raw clip -> record dict (see data/records/record.py), or a Skip with a specific reason.

    The record also carries ``prompt_shortened`` (which prompt parts were cut to fit ``max_seq_len``:
    'speech', 'subtitle', 'answer'), which prepare counts and does not store."""

    def __init__(self, s: Settings):
        cv2.setNumThreads(1)  # parallelism comes from --workers
        self.s = s
        self.llm_tok = tokenizers_lib.load_tokenizer(s.llm_tokenizer, what='LLM')
        self.tokenizer_identity = tokenizers_lib.tokenizer_identity(s.llm_tokenizer)  # written into each record
        self.eos_ids = tokenizers_lib.eos_token_ids(s.llm_tokenizer, self.llm_tok)
        self.qf_tok = tokenizers_lib.load_tokenizer(s.qformer_tokenizer, what='Q-Former')
        self.detector = make_detector(s.face_detector)
        self._cache = None
        self.asr = asr_lib.lazy_asr(s.asr)  # the recognizer loads on first use, once per worker

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
            face_times=media['face_times'][media['face_mask'][:, 0], 0] if s.tubelets == 'apex' else None,
            subtitle=clip.subtitle, question=question, answer=answer, num_video_tokens=s.shapes.video_tokens,
            num_audio_tokens=s.shapes.audio_tokens, max_len=s.shapes.seq_len, eos_token_ids=self.eos_ids)
        rec = {k: v for k, v in media.items() if k != 'utterance_texts'}
        rec.update(name=clip.name, source=s.source, input_ids=np.asarray(prompt.input_ids, np.int32),
                   loss_mask=np.asarray(prompt.loss_mask, bool),
                   modality_positions=np.asarray(prompt.modality_positions, np.int32),
                   words_span=np.asarray(prompt.words, np.int32),
                   subtitle=clip.subtitle or '', answer=answer or '', tokenizer=self.tokenizer_identity,
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
        if clip.segment is not None or clip.crop is not None:
            return self._cut_media(clip)
        key = (clip.video, clip.audio_file, clip.faces_npy, clip.subtitle_file, clip.utterance_file)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        s, sh = self.s, self.s.shapes
        rng = np.random.default_rng(_name_seed(s.seed, os.path.basename(clip.video)))
        apex = s.tubelets == 'apex'
        decoded = video_lib.decode_clip(clip.video, sh.num_frames, frame_size=sh.image_size, mode=s.sampling, rng=rng,
                                        tubelet_length=sh.num_crops,
                                        motion_side=spotting.MOTION_SIDE if apex and not clip.faces_npy else 0)
        duration = float(decoded.info.duration)
        if clip.faces_npy:
            tubes = faces_lib.load_openface_tubelets(clip.faces_npy, decoded.timestamps, duration,
                                                     tubelet_length=sh.num_crops, crop_size=sh.face_size,
                                                     mesh=faces_lib.default_mesh(), apex=apex)
            face_times = tubes.times
        else:
            if apex:           # each tubelet to its interval's peak of facial motion (micro-expression spotting)
                decoded = video_lib.move_tubelets(clip.video, decoded, spotting.spot_tubelets(decoded, self.detector))
            tubes = faces_lib.face_tubelets(decoded, self.detector, crop_size=sh.face_size, align=s.align_faces)
            face_times = decoded.tubelet_times
        sound = audio_lib.load_audio(clip.audio_file or clip.video)
        mel = audio_lib.clip_log_mel(sound.waveform, num_mel_bins=sh.num_mel_bins, max_frames=sh.mel_frames,
                                     window_frames=s.mel_window)
        utts, utt_source = utterances_lib.find_utterances(
            duration, subtitle_path=clip.subtitle_file, utterance_path=clip.utterance_file,
            waveform=sound.waveform if sound.has_audio else None, max_utterances=sh.max_utterances, vad=s.vad,
            asr=self.asr)
        ts_tok = prompt_lib.timestamp_tokenizer(sh.timestamp_tokenizer, qformer_tokenizer=self.qf_tok,
                                                llm_tokenizer=self.llm_tok)
        ts_ids, ts_mask = prompt_lib.timestamp_token_ids(ts_tok, decoded.timestamps, sh.timestamp_tokens)
        frames_blob, frame_offsets = record_lib.join_jpegs([_jpeg(f, s.jpeg_quality) for f in decoded.frames])
        crops = [_jpeg(tubes.faces[i, k], s.jpeg_quality) for i, k in zip(*np.nonzero(tubes.face_mask))]
        faces_blob, face_offsets = record_lib.join_jpegs(crops)
        media = dict(
            timestamps=np.asarray(decoded.timestamps, np.float32), frames_jpeg=frames_blob,
            frame_offsets=frame_offsets, faces_jpeg=faces_blob, face_offsets=face_offsets,
            face_mask=np.asarray(tubes.face_mask, bool), face_boxes=np.asarray(tubes.boxes, np.float32),
            face_times=np.where(tubes.face_mask, face_times, 0.0).astype(np.float32),
            face_landmarks=np.asarray(tubes.landmarks, np.float16),
            face_landmark_mask=np.asarray(tubes.landmark_mask, bool),
            audio_mel=np.ascontiguousarray(mel.T).astype(np.float16),
            utterances=np.asarray([[u.start, u.end] for u in utts], np.float32).reshape(-1, 2),
            utterance_source=utt_source, utterance_texts=[(u.start, u.end, u.text) for u in utts],
            timestamp_ids=np.asarray(ts_ids, np.int32), timestamp_mask=np.asarray(ts_mask, np.int32),
            timestamp_tokenizer=sh.timestamp_tokenizer)
        self._cache = (key, media)
        return media


    def _cut_media(self, clip) -> dict:
        """A clip that is a span (and half) of a longer video, IEMOCAP's: cut into a temporary folder, then read."""
        with tempfile.TemporaryDirectory(prefix='microemo-cut-') as folder:
            video, audio = segments_lib.cut_clip(clip.video, folder, clip.name, segment=clip.segment, crop=clip.crop,
                                                 audio=clip.audio_file is None)
            return self._media(dataclasses.replace(clip, video=video, audio_file=clip.audio_file or audio,
                                                   segment=None, crop=None))


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode('.jpg', np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError('JPEG encoding failed')
    return buf.tobytes()


def _name_seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f'{seed}:{name}'.encode()).digest()[:8], 'big')
