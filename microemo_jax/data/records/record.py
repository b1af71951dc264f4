"""The schema of one prepared clip, shared by ``prepare`` (writer) and the Grain pipeline (reader).

Variable-length fields stay variable along their first axis only (the pipeline pads them to the config's static shapes).
Images are stored as JPEG bytes concatenated into one uint8 vector with offsets, which keeps records
compact and needs only raw ``Tensor`` features (TFDS ``Image``/``Video`` features need TensorFlow).

Per record, with T' sampled frames, K crops per anchor, U utterances, S prompt tokens, L timestamp tokens:

    name               str     clip name (file stem / dataset name)
    source             str     raw layout it came from (emer_v1, folder, ...)
    timestamps         f32 (T',)          true presentation time of each sampled frame, seconds
    frames_jpeg        u8  (bytes,)       T' JPEGs (RGB, model.vision.image_size square), concatenated
    frame_offsets      i64 (T'+1,)        byte offsets of each JPEG in frames_jpeg
    faces_jpeg         u8  (bytes,)       JPEGs of the face crops that exist, concatenated (row-major T', K)
    face_offsets       i64 (n_faces+1,)
    face_mask          bool (T', K)       which crops exist (crops are packed at the front of each tubelet)
    face_boxes         f32 (T', 4)        x, y, w, h of the tracked face in the source frame (0 when none)
    face_times         f32 (T', K)        when each crop was shown, seconds (0 where face_mask is False): the
                                          anchor's frames, or with micro_expression.tubelets='apex' the
                                          frames spotting chose between this anchor and the next
    face_landmarks     f16 (T', K, 68, 2) face-mesh landmarks of each crop (the 68-point iBUG subset, faces.py), x, y
                                          in the crop in units of its side (0..1); 0 where face_landmark_mask is False
    face_landmark_mask bool (T', K)       crops whose landmarks were found
    audio_mel          f16 (M, n_mels)    Whisper log-mel of the clip's audio, TIME-MAJOR (M may be 0: no audio;
                                          TFDS Tensors allow only the first dimension to vary)
    utterances         f32 (U, 2)         start, end seconds
    utterance_source   str     'subtitles' | 'utterance_file' | 'asr-whisper' | 'asr-pocketsphinx' | 'vad' | 'whole'
                                          (where the spans came from: utterances.SOURCES)
    timestamp_ids      i32 (T', L)        image Q-Former tokens of "This frame is sampled at {t} second."
    timestamp_mask     i32 (T', L)
    timestamp_tokenizer str    'bert' | 'llm': which tokenizer made timestamp_ids (model.frame_encoder.timestamp_tokenizer);
                               the pipeline refuses records made with the other one
    tokenizer          str     data.tokenizers.tokenizer_identity of the LLM tokenizer folder (its files and chat
                               template) that made input_ids; the pipeline refuses records of another
    input_ids          i32 (S,)           chat-template prompt (+ answer) with placeholder ids at modality slots
    loss_mask          bool (S,)          answer tokens
    modality_positions i32 (N_video + N_audio,)  where the projected video, then audio tokens go
    words_span         i32 (2,)           [start, end) of the prompt's words (transcribed speech and subtitle;
                                          0, 0 when none): what data.text_dropout hides
    subtitle, answer, openset   str      (openset as a JSON list; '' when unknown)
"""
from __future__ import annotations

import numpy as np

FIELDS = {
    # name: (dtype, rank) ; shapes are variable along every axis except where noted in the docstring
    'timestamps': (np.float32, 1),
    'frames_jpeg': (np.uint8, 1),
    'frame_offsets': (np.int64, 1),
    'faces_jpeg': (np.uint8, 1),
    'face_offsets': (np.int64, 1),
    'face_mask': (np.bool_, 2),
    'face_boxes': (np.float32, 2),
    'face_times': (np.float32, 2),
    'face_landmarks': (np.float16, 4),
    'face_landmark_mask': (np.bool_, 2),
    'audio_mel': (np.float16, 2),
    'utterances': (np.float32, 2),
    'timestamp_ids': (np.int32, 2),
    'timestamp_mask': (np.int32, 2),
    'input_ids': (np.int32, 1),
    'loss_mask': (np.bool_, 1),
    'modality_positions': (np.int32, 1),
    'words_span': (np.int32, 1),
}
TEXT_FIELDS = ('name', 'source', 'utterance_source', 'subtitle', 'answer', 'openset', 'timestamp_tokenizer',
               'tokenizer')
TIMESTAMP_TOKENIZERS = ('bert', 'llm')
NUM_LANDMARKS = 68   # faces.NUM_LANDMARKS (landmarks.MESH_68)


def text_field(x) -> str:
    """A record's text field as ``str``: TFDS and ArrayRecord hand text back as bytes, a 0-d array or a str."""
    x = x.item() if isinstance(x, np.ndarray) else x
    return x.decode('utf-8') if isinstance(x, bytes) else str(x)


def check_record(rec: dict) -> None:
    """Raise ValueError naming the first field that is missing or has the wrong dtype/rank/consistency."""
    name = rec.get('name', '<unnamed>')
    if 'face_mask' in rec and 'face_landmarks' not in rec:
        raise ValueError(f"record {name!r}: no 'face_landmarks' field (face-mesh landmarks of each crop): it was "
                         f"prepared by an older version; re-run prepare")
    if 'input_ids' in rec and 'words_span' not in rec:
        raise ValueError(f"record {name!r}: no 'words_span' field (where the prompt's words are): it was prepared "
                         f"by an older version; re-run prepare")
    if 'face_mask' in rec and 'face_times' not in rec:
        raise ValueError(f"record {name!r}: no 'face_times' field (when each face crop was shown): it was "
                         f"prepared by an older version; re-run prepare")
    for key, (dtype, rank) in FIELDS.items():
        if key not in rec:
            raise ValueError(f"record {name!r}: field {key!r} is missing")
        arr = np.asarray(rec[key])
        if arr.dtype != dtype or arr.ndim != rank:
            raise ValueError(f"record {name!r}: field {key!r} is {arr.dtype}{arr.shape}, expected {np.dtype(dtype)} "
                             f"of rank {rank}")
    if 'timestamp_tokenizer' not in rec:
        raise ValueError(f"record {name!r}: no 'timestamp_tokenizer' field (which tokenizer made its timestamp ids): "
                         f"it was prepared by an older version; re-run prepare")
    if rec['timestamp_tokenizer'] not in TIMESTAMP_TOKENIZERS:
        raise ValueError(f"record {name!r}: timestamp_tokenizer={rec['timestamp_tokenizer']!r} is not one of "
                         f"{TIMESTAMP_TOKENIZERS}")
    if 'tokenizer' not in rec:
        raise ValueError(f"record {name!r}: no 'tokenizer' field (the identity of the tokenizer and chat template "
                         f"that made its prompt): it was prepared by an older version; re-run prepare")
    for key in TEXT_FIELDS:
        if not isinstance(rec.get(key), str):
            raise ValueError(f"record {name!r}: text field {key!r} is missing or not a str")
    t = len(rec['timestamps'])
    if len(rec['frame_offsets']) != t + 1 or rec['face_mask'].shape[0] != t or rec['timestamp_ids'].shape[0] != t:
        raise ValueError(f"record {name!r}: {t} timestamps but frame/face/timestamp-token arrays disagree")
    k = rec['face_mask'].shape[1]
    if rec['face_landmarks'].shape != (t, k, NUM_LANDMARKS, 2) or rec['face_landmark_mask'].shape != (t, k):
        raise ValueError(f"record {name!r}: face_landmarks {rec['face_landmarks'].shape} / face_landmark_mask "
                         f"{rec['face_landmark_mask'].shape} do not match face_mask {rec['face_mask'].shape} "
                         f"(want ({t}, {k}, {NUM_LANDMARKS}, 2) and ({t}, {k}))")
    if rec['face_times'].shape != (t, k):
        raise ValueError(f"record {name!r}: face_times {rec['face_times'].shape} does not match face_mask "
                         f"{rec['face_mask'].shape}")
    if len(rec['face_offsets']) != int(rec['face_mask'].sum()) + 1:
        raise ValueError(f"record {name!r}: face_offsets does not match the number of crops in face_mask")
    if rec['input_ids'].shape != rec['loss_mask'].shape:
        raise ValueError(f"record {name!r}: input_ids and loss_mask differ in length")
    span = np.asarray(rec['words_span'])
    if span.shape != (2,) or not 0 <= span[0] <= span[1] <= len(rec['input_ids']):
        raise ValueError(f"record {name!r}: words_span {span.tolist()} is not a [start, end) inside its "
                         f"{len(rec['input_ids'])} prompt tokens")


def split_jpegs(blob: np.ndarray, offsets: np.ndarray) -> list[bytes]:
    """The individual JPEG byte strings of a concatenated blob."""
    data = np.asarray(blob, np.uint8).tobytes()
    return [data[int(a):int(b)] for a, b in zip(offsets[:-1], offsets[1:])]


def join_jpegs(jpegs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate JPEG byte strings -> (uint8 blob, int64 offsets)."""
    offsets = np.zeros(len(jpegs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(j) for j in jpegs])
    blob = np.frombuffer(b''.join(jpegs), np.uint8).copy() if jpegs else np.zeros(0, np.uint8)
    return blob, offsets
