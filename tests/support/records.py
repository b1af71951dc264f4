"""``make_record``: a synthetic prepared record (real JPEG bytes, passes ``check_record``) at any shapes.

One builder for every test that needs records without running ``prepare``: the dataset writer and
readers (small defaults), and the Grain pipeline (``shapes=`` a config's data shapes, and
``with_images=True`` for the pixels before JPEG coding, to compare with what comes out of a batch).
"""
from __future__ import annotations

import cv2
import numpy as np

from microemo_jax.data.records.record import check_record, join_jpegs


def jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode('.jpg', np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


def smooth_image(rng, size: int, t: float = 0) -> np.ndarray:
    """Smooth RGB image with distinct channels (JPEG keeps it to a few levels; a BGR swap would show)."""
    y, x = np.mgrid[0:size, 0:size] / size
    phase = rng.uniform(0, 6.28, 3)
    img = np.stack([0.5 + 0.4 * np.sin(3 * x + phase[0] + 0.3 * t), 0.2 + 0.6 * y,
                    0.5 + 0.4 * np.cos(2 * (x + y) + phase[2])], -1)
    return (img * 255).astype(np.uint8)


TOKENIZER = 'sha256:0123456789abcdef'   # the tokenizer identity the records say made them


def make_record(name: str, *, shapes=None, num_frames=3, num_crops=2, faces_per_frame=None, image_size=32,
                face_size=None, mel_frames=10, num_mel_bins=16, utterances=1, timestamp_tokens=5, seq_len=40,
                answer_tokens=5, num_modality=None, seed=0, same_image=False, with_images=False):
    """A record named ``name``; every array drawn from ``seed``.

    shapes: a config's data shapes; when given, its ``num_crops``, ``image_size`` and ``num_mel_bins`` replace
        those keywords, so that the pipeline accepts the record.
    num_modality: modality positions; None: the shapes' video + audio tokens (12 without shapes).
    faces_per_frame: faces found at each anchor; None: none at the first anchor (an anchor without a face)
        and ``num_crops - 1`` at the others; 'random': 0..num_crops drawn per anchor; or one count per frame.
    utterances: how many (0.5 s each, sorted starts in the first 2 s).
    timestamp_tokens: ids per frame; the last two are padding (mask 0, id 0) when there are more than two.
    answer_tokens: the last ones of the ``seq_len`` input ids carry the loss.
    same_image: every frame one picture and every face crop another (augmentation tests).
    with_images: also return the RGB frames and face crops as they were before JPEG coding:
        ``(record, frames, faces)``.
    """
    if shapes is not None:
        num_crops, image_size, num_mel_bins = shapes.num_crops, shapes.image_size, shapes.num_mel_bins
    if num_modality is None:
        num_modality = shapes.video_tokens + shapes.audio_tokens if shapes is not None else 12
    face_size = face_size or image_size
    rng = np.random.default_rng(seed)
    frames = [smooth_image(np.random.default_rng(0) if same_image else rng, image_size, 0 if same_image else i)
              for i in range(num_frames)]
    if faces_per_frame is None:
        faces_per_frame = [0] + [max(1, num_crops - 1)] * (num_frames - 1)
    elif isinstance(faces_per_frame, str) and faces_per_frame == 'random':
        faces_per_frame = rng.integers(0, num_crops + 1, num_frames)
    face_mask = np.arange(num_crops)[None, :] < np.asarray(faces_per_frame)[:, None]
    faces = [smooth_image(np.random.default_rng(1) if same_image else rng, face_size)
             for _ in range(int(face_mask.sum()))]
    frames_jpeg, frame_offsets = join_jpegs([jpeg(f) for f in frames])
    faces_jpeg, face_offsets = join_jpegs([jpeg(f) for f in faces])
    starts = np.sort(rng.uniform(0, 2, utterances))
    ts_mask = np.ones((num_frames, timestamp_tokens), np.int32)
    if timestamp_tokens > 2:
        ts_mask[:, -2:] = 0
    loss_mask = np.zeros(seq_len, bool)
    loss_mask[seq_len - answer_tokens:] = True
    rec = dict(
        name=name, source='folder', utterance_source='subtitles', timestamp_tokenizer='bert', tokenizer=TOKENIZER,
        subtitle='I am fine.', answer='The character is calm.', openset='["calm"]',
        timestamps=np.arange(num_frames, dtype=np.float32) * 0.5,
        frames_jpeg=frames_jpeg, frame_offsets=frame_offsets, faces_jpeg=faces_jpeg, face_offsets=face_offsets,
        face_mask=face_mask, face_boxes=np.tile(np.float32([4, 4, 20, 20]), (num_frames, 1)),
        face_times=np.where(face_mask, np.arange(num_frames)[:, None] * 0.5 + np.arange(num_crops) * 0.04,
                            0).astype(np.float32),
        face_landmarks=np.where(face_mask[..., None, None], rng.uniform(0.2, 0.8, face_mask.shape + (68, 2)),
                                0).astype(np.float16),
        face_landmark_mask=face_mask.copy(),
        audio_mel=rng.standard_normal((mel_frames, num_mel_bins)).astype(np.float16),  # time-major
        utterances=np.stack([starts, starts + 0.5], -1).astype(np.float32).reshape(utterances, 2),
        timestamp_ids=rng.integers(1, 50, (num_frames, timestamp_tokens)).astype(np.int32) * ts_mask,
        timestamp_mask=ts_mask,
        input_ids=rng.integers(3, 100, seq_len).astype(np.int32), loss_mask=loss_mask,
        modality_positions=np.arange(1, 1 + num_modality, dtype=np.int32),
        words_span=np.zeros(2, np.int32),
    )
    check_record(rec)
    return (rec, frames, faces) if with_images else rec
