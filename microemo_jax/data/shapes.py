"""The static per-clip data shapes a config implies, and the batch contract built from them.

One place derives them (``DataShapes.from_config``): ``prepare`` writes records that fit them, the Grain
pipeline pads records to them, ``batch.batch_spec`` hands them to the compiler, the demo's cache name hashes
them. ``batch_contract`` is the one table of the batch's names, shapes and dtypes; the pipeline allocates
its batches from it and ``MODEL_INPUTS`` (what ``MicroEmo`` reads) is its key list.

No JAX at import time: prepare's worker processes import this module (``token_budget`` imports the
model's slot count only when called).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from microemo_jax.data.records.record import NUM_LANDMARKS


def token_budget(m) -> tuple[int, int]:
    """(video tokens, audio tokens) the prompt must reserve for model config ``m``."""
    from microemo_jax.models.slots import num_slots  # imports jax: only the main process derives shapes
    slots = num_slots(m.max_utterances, m.num_frames, utterance_scale=m.utterance_scale, window_size=m.window_size,
                      window_stride=m.window_stride)
    video = slots * m.video_qformer.num_query_tokens
    audio = (num_slots(m.max_utterances, 0, utterance_scale=m.utterance_scale) * m.audio_qformer.num_query_tokens
             if m.audio.enabled else 0)
    return video, audio


@dataclasses.dataclass(frozen=True)
class DataShapes:
    """Static per-clip shapes from a config; everything a worker needs to turn a record into an example."""
    num_frames: int            # T
    image_size: int
    num_crops: int             # K
    face_size: int
    timestamp_tokens: int      # L
    num_mel_bins: int
    mel_frames: int
    max_utterances: int        # U_max
    seq_len: int
    video_tokens: int
    audio_tokens: int
    timestamp_tokenizer: str = 'bert'   # which tokenizer's ids the model's image Q-Former reads
    tokenizer: str = ''                 # the LLM tokenizer identity records must carry ('': not checked)

    @classmethod
    def from_config(cls, cfg) -> 'DataShapes':
        return cls.from_model(cfg.model, cfg.data.max_seq_len, mel_frames=cfg.data.max_mel_frames)

    @classmethod
    def from_model(cls, m, seq_len: int, *, mel_frames: int | None = None) -> 'DataShapes':
        """Shapes for model config ``m`` (the ``model`` section) with ``seq_len`` prompt tokens;
        ``mel_frames`` defaults to the audio encoder's whole window (2 * ``max_source_positions``)."""
        me = m.micro_expression
        video, audio = token_budget(m)
        return cls(num_frames=m.num_frames, image_size=m.vision.image_size, num_crops=me.num_crops,
                   face_size=me.face_vision.image_size if me.face_encoder == 'separate' else m.vision.image_size,
                   timestamp_tokens=m.frame_encoder.max_timestamp_tokens, num_mel_bins=m.audio.num_mel_bins,
                   mel_frames=mel_frames or 2 * m.audio.max_source_positions, max_utterances=m.max_utterances,
                   seq_len=seq_len, video_tokens=video, audio_tokens=audio,
                   timestamp_tokenizer=m.frame_encoder.timestamp_tokenizer)

    @property
    def audio_positions(self) -> int:
        """Audio encoder positions: the Whisper stem halves the mel frames."""
        return (self.mel_frames + 1) // 2

    @property
    def modality_tokens(self) -> int:
        """Placeholder positions in the prompt: the video tokens, then the audio tokens."""
        return self.video_tokens + self.audio_tokens


# name, shape (DataShapes attributes by name, numbers as they are), dtype. Frames and face crops are uint8
# pixels (``microemo_jax.pixels``): the model normalises them on the device.
_CONTRACT = (
    ('frames', ('num_frames', 3, 'image_size', 'image_size'), np.uint8),
    ('frame_mask', ('num_frames',), np.bool_),
    ('timestamps', ('num_frames',), np.float32),
    ('timestamp_ids', ('num_frames', 'timestamp_tokens'), np.int32),
    ('timestamp_mask', ('num_frames', 'timestamp_tokens'), np.int32),
    ('faces', ('num_frames', 'num_crops', 3, 'face_size', 'face_size'), np.uint8),
    ('face_mask', ('num_frames', 'num_crops'), np.bool_),
    ('face_landmarks', ('num_frames', 'num_crops', NUM_LANDMARKS, 2), np.float32),
    ('face_landmark_mask', ('num_frames', 'num_crops'), np.bool_),
    ('audio_mel', ('num_mel_bins', 'mel_frames'), np.float32),
    ('audio_mask', ('audio_positions',), np.bool_),
    ('utterances', ('max_utterances', 2), np.float32),
    ('utterance_mask', ('max_utterances',), np.bool_),
    ('input_ids', ('seq_len',), np.int32),
    ('attention_mask', ('seq_len',), np.bool_),
    ('loss_mask', ('seq_len',), np.bool_),
    ('modality_positions', ('modality_tokens',), np.int32),
)
BATCH_KEYS = tuple(name for name, _, _ in _CONTRACT)                 # a batch also carries 'names' (B,) str
MODEL_INPUTS = tuple(name for name in BATCH_KEYS if name != 'loss_mask')   # what MicroEmo reads


def batch_contract(shapes: DataShapes, batch_size: int | None = None) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Name -> (shape, numpy dtype) of every batch array but ``names``; ``batch_size=None``: one example
    (no batch axis). Raises ValueError when the prompt cannot hold its modality placeholders and text."""
    if shapes.seq_len < shapes.modality_tokens + 2:
        raise ValueError(f"seq_len={shapes.seq_len} cannot hold {shapes.video_tokens} video + {shapes.audio_tokens} "
                         f"audio placeholders and text")
    lead = () if batch_size is None else (batch_size,)
    return {name: (lead + tuple(d if isinstance(d, int) else getattr(shapes, d) for d in dims), np.dtype(dtype))
            for name, dims, dtype in _CONTRACT}
