"""Synthetic prepared records (real JPEG bytes) for tests of the dataset writer and readers."""
from __future__ import annotations

import cv2
import numpy as np

from microemo_jax.data.record import check_record, join_jpegs


def jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode('.jpg', np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


def make_record(name: str, *, num_frames=3, num_crops=2, size=32, mel_frames=10, num_mel_bins=16,
                utterances=((0.0, 1.0),), timestamp_tokens=5, seq_len=40, num_modality=12, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    frames = [np.full((size, size, 3), 10 * i + 5, np.uint8) for i in range(num_frames)]
    face_mask = np.zeros((num_frames, num_crops), bool)
    face_mask[:, :max(1, num_crops - 1)] = True
    face_mask[0] = False  # an anchor without a face
    crops = [np.full((size, size, 3), 200, np.uint8) for _ in range(int(face_mask.sum()))]
    frames_blob, frame_offsets = join_jpegs([jpeg(f) for f in frames])
    faces_blob, face_offsets = join_jpegs([jpeg(c) for c in crops])
    loss_mask = np.zeros(seq_len, bool)
    loss_mask[-5:] = True
    rec = dict(
        name=name, source='folder', timestamps=np.arange(num_frames, dtype=np.float32) * 0.5,
        frames_jpeg=frames_blob, frame_offsets=frame_offsets, faces_jpeg=faces_blob, face_offsets=face_offsets,
        face_mask=face_mask, face_boxes=np.tile(np.float32([4, 4, 20, 20]), (num_frames, 1)),
        face_landmarks=np.where(face_mask[..., None, None], rng.uniform(0.2, 0.8, (num_frames, num_crops, 68, 2)),
                                0).astype(np.float16),
        face_landmark_mask=face_mask.copy(),
        audio_mel=rng.standard_normal((mel_frames, num_mel_bins)).astype(np.float16),
        utterances=np.asarray(utterances, np.float32).reshape(-1, 2), utterance_source='subtitles',
        timestamp_tokenizer='bert',
        timestamp_ids=rng.integers(1, 50, (num_frames, timestamp_tokens)).astype(np.int32),
        timestamp_mask=np.ones((num_frames, timestamp_tokens), np.int32),
        input_ids=rng.integers(3, 100, seq_len).astype(np.int32), loss_mask=loss_mask,
        modality_positions=np.arange(1, 1 + num_modality, dtype=np.int32),
        subtitle='I am fine.', answer='The character is calm.', openset='["calm"]')
    check_record(rec)
    return rec
