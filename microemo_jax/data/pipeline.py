"""Grain pipeline: prepared clips -> static-shape numpy batches (the batch contract, ``data/shapes.py``).

    source = open_split(cfg.data.dir, 'train')
    it = make_iterator(source, cfg, train=True)          # grain.DatasetIterator of numpy batches
    batch = next(it)                                     # data/shapes.py batch_contract keys + 'names'

Order: ``MapDataset.source -> seed -> shuffle (train) -> repeat (train: forever) -> draw each clip's
augmentation (random_map) -> [process_index::process_count] -> to_iter_dataset -> batch the stored clips
-> decode them into the batch (BatchAssembler) -> mp_prefetch``. Two departures from Grain's textbook
order, both measured or reasoned:

* the augmentation draw sits before the process shard: a ``MapDataset`` is lazy and random-access, so each
  process still touches only its own clips, but Grain seeds the RNG with the element's index, so clip i
  of epoch e gets the same augmentation whatever the process count, and two processes never share draws.
* JPEG decoding happens after ``batch``, straight into the batch arrays (in shared memory inside a worker),
  instead of per clip followed by Grain's stacking copy: at paper shapes a padded clip is 93 MiB of
  float32 (23 MiB since pixels went uint8), and the stack (plus the copy into shared memory) cost as much as
  decoding and augmenting.
  Prefetch buffers then hold stored clips (a few MiB) rather than decoded ones.

Frames and face crops leave as uint8 (cropped, flipped, colour-jittered); the model normalises them on the
device (``microemo_jax.pixels``), a quarter of the host-to-device bytes of float32 pixels.

Every batch has the same shapes: frames, faces, timestamp tokens, utterances, audio and tokens are padded
to the config and masked. Face landmarks (crop units) follow their crops: mirrored with a flipped
crop. Evaluation repeats clips at the end (``names == ''``, ``loss_mask`` all False)
so every process and worker gets whole batches and the same number of them; nothing is dropped.

Iterator state: ``it.get_state()`` / ``it.set_state(state)`` give back the exact next batch (same
``num_workers`` and process count). With Orbax::

    mngr.save(step, args=ocp.args.Composite(state=..., dataset=grain.checkpoint.CheckpointSave(it)))
    mngr.restore(step, args=ocp.args.Composite(state=..., dataset=grain.checkpoint.CheckpointRestore(it)))

Worker processes (``num_workers > 0``) are spawned and need parsed absl flags: entry points that do not run
under ``absl.app.run`` must call ``absl.flags.FLAGS.mark_as_parsed()`` (or ``FLAGS(sys.argv[:1])``) first.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import cv2
import grain
import numpy as np
from grain.python import SharedMemoryArray  # public re-export (grain.python is Grain's compatibility API)

from microemo_jax.data.augment import IDENTITY, ClipAugment, augment_into, crop_frames, resize_square
from microemo_jax.data.faces.landmarks import flip_landmarks
from microemo_jax.data.records import record as rec_lib
from microemo_jax.data.records.record import text_field
from microemo_jax.data.shapes import DataShapes, batch_contract

_IMREAD_RGB = getattr(cv2, 'IMREAD_COLOR_RGB', 0)   # OpenCV >= 4.10 decodes straight to RGB
PADDING_KEY = '_padding'   # set on the clips evaluation repeats to fill its last batches


# ----------------------------------------------------------------------------------------------- sources
def open_split(data_dir: str, split: str):
    """Random-access source of one split of a prepared (TFDS ArrayRecord) dataset: ``data_dir`` is the
    ``prepare --out`` folder or the folder holding dataset_info.json (see ``tfds_builder.find_dataset``)."""
    from microemo_jax.data.records.tfds_builder import open_dataset  # TFDS is heavy; only the main process needs it
    return open_dataset(data_dir, split)


# ----------------------------------------------------------------------------------------------- one clip
def _decode_jpegs(blob: np.ndarray, offsets: np.ndarray, name: str, what: str) -> list[np.ndarray]:
    images = []
    for i, data in enumerate(rec_lib.split_jpegs(blob, offsets)):
        img = cv2.imdecode(np.frombuffer(data, np.uint8), _IMREAD_RGB or cv2.IMREAD_COLOR)
        if img is not None and not _IMREAD_RGB:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if img is None:
            raise ValueError(f"clip {name!r}: {what} {i} is not a decodable JPEG ({len(data)} bytes); "
                             f"re-run prepare for this clip")
        images.append(img)
    return images


def _check_fits(rec: dict, s: DataShapes, name: str) -> None:
    """Raise naming the clip when a record cannot be padded to the config's static shapes."""
    other = "the dataset was prepared for another config: re-run prepare with this one"
    t, k = rec['face_mask'].shape[0], rec['face_mask'].shape[1]
    if t > s.num_frames:
        raise ValueError(f"clip {name!r} has {t} frames, model.num_frames={s.num_frames}; {other}")
    if k > s.num_crops:
        raise ValueError(f"clip {name!r} has {k} face crops per frame, model.micro_expression.num_crops="
                         f"{s.num_crops}; {other}")
    if rec['timestamp_tokenizer'] != s.timestamp_tokenizer:
        raise ValueError(f"clip {name!r} has timestamp ids from the {rec['timestamp_tokenizer']!r} tokenizer, the model "
                         f"reads model.frame_encoder.timestamp_tokenizer={s.timestamp_tokenizer!r} ids; {other}")
    if s.tokenizer and rec['tokenizer'] != s.tokenizer:
        raise ValueError(f"clip {name!r} was tokenized by the tokenizer {rec['tokenizer']} (files and chat template), "
                         f"but this run's tokenizer is {s.tokenizer}: its token ids would be read as another "
                         f"vocabulary's. Re-run prepare with the tokenizer of this run")
    if rec['timestamp_ids'].shape[1] > s.timestamp_tokens:
        raise ValueError(f"clip {name!r} has {rec['timestamp_ids'].shape[1]} timestamp tokens, "
                         f"model.frame_encoder.max_timestamp_tokens={s.timestamp_tokens}; {other}")
    mel = rec['audio_mel']
    if mel.shape[0] and mel.shape[1] != s.num_mel_bins:  # stored time-major (M, n_mels)
        raise ValueError(f"clip {name!r} has {mel.shape[1]}-bin log-mel audio, model.audio.num_mel_bins="
                         f"{s.num_mel_bins}; {other}")
    n_pos, budget = len(rec['modality_positions']), s.modality_tokens
    if n_pos != budget:
        raise ValueError(f"clip {name!r} reserves {n_pos} modality tokens in its prompt, the model needs {budget} "
                         f"({s.video_tokens} video + {s.audio_tokens} audio); {other}")
    n_utt = len(rec['utterances'])
    if n_utt > s.max_utterances:
        raise ValueError(f"clip {name!r} has {n_utt} utterances, model.max_utterances={s.max_utterances}; "
                         f"prepare merges utterances down to U_max: re-run it with this config")
    n_tok = len(rec['input_ids'])
    if n_tok > s.seq_len:
        raise ValueError(f"clip {name!r} has a {n_tok}-token prompt, data.max_seq_len={s.seq_len}; raise "
                         f"data.max_seq_len or shorten the prompt/answer in prepare")
    if n_pos and (rec['modality_positions'].min() < 0 or rec['modality_positions'].max() >= n_tok):
        raise ValueError(f"clip {name!r}: modality_positions point outside its {n_tok}-token prompt")


def as_record(raw: dict) -> dict:
    """A source element (TFDS gives text as bytes) as a checked record dict with str text fields."""
    out = dict(raw)
    for key in rec_lib.TEXT_FIELDS:
        if key in out:
            out[key] = text_field(out[key])
    rec_lib.check_record(out)
    return out


def fill_example(raw: dict, s: DataShapes, aug: ClipAugment, out: dict[str, np.ndarray]) -> str:
    """Decode and augment one clip into ``out`` (one row of zero-filled batch arrays); its name.

    Writing straight into the batch (no per-clip arrays stacked afterwards) saves a copy of ~23 MiB per clip
    at paper shapes; the rows must be zero-filled because padding is left untouched.
    """
    padding = bool(raw.get(PADDING_KEY, False))
    rec = as_record({k: v for k, v in raw.items() if k != PADDING_KEY})
    name = rec['name']
    _check_fits(rec, s, name)
    t, k = rec['face_mask'].shape

    frames = _decode_jpegs(rec['frames_jpeg'], rec['frame_offsets'], name, 'frame')
    augment_into(crop_frames(frames, aug, s.image_size), out['frames'][:len(frames)], aug)
    out['frame_mask'][:t] = True
    out['timestamps'][:t] = rec['timestamps']
    ids = rec['timestamp_ids']
    out['timestamp_ids'][:t, :ids.shape[1]] = ids
    out['timestamp_mask'][:t, :ids.shape[1]] = rec['timestamp_mask']

    face_mask = np.asarray(rec['face_mask'], bool)
    crops = [resize_square(c, s.face_size)
             for c in _decode_jpegs(rec['faces_jpeg'], rec['face_offsets'], name, 'face crop')]
    slots = [out['faces'][ti, ki] for ti, ki in zip(*np.nonzero(face_mask))]   # row-major (T', K), as prepare wrote
    augment_into(crops, slots, aug)
    out['face_mask'][:t, :k] = face_mask
    lms = np.asarray(rec['face_landmarks'], np.float32)
    if aug.flip:                                   # the crops are mirrored: so are their landmarks
        lms = flip_landmarks(lms)
    lm_mask = np.asarray(rec['face_landmark_mask'], bool)
    out['face_landmarks'][:t, :k] = np.where(lm_mask[..., None, None], lms, 0.0)
    out['face_landmark_mask'][:t, :k] = lm_mask

    n_mel = min(rec['audio_mel'].shape[0], s.mel_frames)
    if n_mel:
        out['audio_mel'][:, :n_mel] = rec['audio_mel'][:n_mel].T
    out['audio_mask'][:(n_mel + 1) // 2] = True

    n_utt = len(rec['utterances'])
    out['utterances'][:n_utt] = rec['utterances']
    out['utterance_mask'][:n_utt] = True

    n_tok = len(rec['input_ids'])
    out['input_ids'][:n_tok] = rec['input_ids']
    out['attention_mask'][:n_tok] = True
    if aug.hide_words:                             # text dropout: the answer must come from the video and audio
        start, end = (int(v) for v in rec['words_span'])
        out['attention_mask'][start:end] = False
    if not padding:
        out['loss_mask'][:n_tok] = rec['loss_mask']
    out['modality_positions'][:] = rec['modality_positions']
    return '' if padding else name


_SHM_MIN_BYTES = 1 << 20


def _zeros(shape, dtype, shared: bool) -> np.ndarray:
    if shared and math.prod(shape) * np.dtype(dtype).itemsize >= _SHM_MIN_BYTES:
        return SharedMemoryArray(shape, dtype)   # fresh shared memory reads as zeros
    return np.zeros(shape, dtype)


class BatchAssembler:
    """[(record, ClipAugment), ...] -> one batch dict, each clip decoded into its row.

    In a Grain worker (``shared=True``) the big arrays live in shared memory from the start, so Grain hands
    them to the main process without copying them again.
    """

    def __init__(self, shapes: DataShapes, *, shared: bool = False):
        self.shapes, self.shared = shapes, shared

    def __call__(self, items: Sequence[tuple[dict, ClipAugment]]) -> dict[str, np.ndarray]:
        b = len(items)
        batch = {k: _zeros(shape, dtype, self.shared) for k, (shape, dtype) in batch_contract(self.shapes, b).items()}
        try:
            names = [fill_example(raw, self.shapes, aug, {k: v[i] for k, v in batch.items()})
                     for i, (raw, aug) in enumerate(items)]
        except BaseException:
            for v in batch.values():
                if isinstance(v, SharedMemoryArray):
                    v.unlink_on_del()
            raise
        batch['names'] = np.array(names, dtype=np.str_).reshape(b)
        return batch


def example_from_record(raw: dict, s: DataShapes, aug: ClipAugment = IDENTITY) -> dict[str, np.ndarray]:
    """One clip -> one un-batched example (e.g. for prediction): decoded, augmented, padded and masked."""
    return {k: v[0] for k, v in BatchAssembler(s)([(raw, aug)]).items()}


@dataclasses.dataclass(frozen=True)
class _DrawAugment:
    """Grain ``random_map``: each training clip's pixel augmentation (``pixels``) and, with probability
    ``text_dropout``, hidden words (drawn after the pixels, so the pixel draws do not depend on it)."""
    pixels: bool
    text_dropout: float

    def __call__(self, raw: dict, rng: np.random.Generator) -> tuple[dict, ClipAugment]:
        aug = ClipAugment.sample(rng) if self.pixels else IDENTITY
        if self.text_dropout > 0 and rng.random() < self.text_dropout:
            aug = dataclasses.replace(aug, hide_words=True)
        return raw, aug


def _no_augment(raw: dict) -> tuple[dict, ClipAugment]:
    return raw, IDENTITY


def _mark_padding(raw: dict) -> dict:
    return {**raw, PADDING_KEY: True}


def _worker_init(worker_index: int, worker_count: int) -> None:
    cv2.setNumThreads(1)   # one core per worker; OpenCV's own pool would oversubscribe


# ----------------------------------------------------------------------------------------------- batches
def per_process_batch_size(cfg, process_count: int | None = None) -> int:
    """cfg.data.batch_size split over processes (must divide evenly: ``sharding.split_batch``)."""
    # JAX start-up: Grain workers import this module; jax stays out of their start-up path
    import jax

    from microemo_jax.sharding import split_batch
    processes = jax.process_count() if process_count is None else process_count
    return split_batch(cfg.data.batch_size, processes=processes)


def make_iterator(source: Sequence[dict], cfg, *, train: bool, seed: int | None = None,
                  process_index: int | None = None, process_count: int | None = None,
                  num_workers: int | None = None, read_options: grain.ReadOptions | None = None,
                  tokenizer: str | None = None) -> grain.DatasetIterator:
    """Grain iterator of this process's numpy batches: the ``batch_contract`` arrays plus ``names`` (B,) str.

    train: shuffled with ``seed`` (default cfg.seed), repeated forever, augmented when cfg.data.augment.
    eval: in order, once, padded with repeated clips (``names == ''``, no loss) to whole batches.
    ``process_index/count`` default to JAX's; ``num_workers`` to cfg.data.num_workers (0: in-process).
    ``tokenizer``: the LLM tokenizer identity (``data.tokenizers.tokenizer_identity``) every record must carry;
    a record made by another tokenizer or chat template is refused, naming both.
    """
    if process_index is None or process_count is None:
        import jax  # JAX start-up: as in per_process_batch_size
        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} is outside 0..{process_count - 1}")
    batch = per_process_batch_size(cfg, process_count)
    workers = cfg.data.num_workers if num_workers is None else num_workers
    seed = cfg.seed if seed is None else seed
    shapes = dataclasses.replace(DataShapes.from_config(cfg), tokenizer=tokenizer or '')
    batch_contract(shapes)   # a prompt too short for its placeholders fails here
    n = len(source)
    if n == 0:
        raise ValueError("the split has no clips")
    _check_fits(as_record(source[0]), shapes, text_field(source[0]['name']))   # a wrong config fails here, not later

    ds = grain.MapDataset.source(source).seed(seed)
    if train:
        ds = ds.shuffle().repeat(None)
        text_dropout = float(cfg.data.get('text_dropout', 0.0))
        if cfg.data.augment or text_dropout:
            ds = ds.random_map(_DrawAugment(pixels=bool(cfg.data.augment), text_dropout=text_dropout))
        else:
            ds = ds.map(_no_augment)
    else:
        whole = batch * process_count * max(workers, 1)     # every process and worker gets whole batches
        extra = -n % whole
        if extra:
            fill = grain.MapDataset.source(source).repeat(math.ceil(extra / n))[:extra].map(_mark_padding)
            ds = grain.MapDataset.concatenate([ds, fill])
        ds = ds.map(_no_augment)
    ds = ds[process_index::process_count]
    if read_options is None:   # the prefetch buffer holds stored (JPEG) clips: a few MiB each at paper shapes
        read_options = grain.ReadOptions(num_threads=2, prefetch_buffer_size=2 * batch)
    it_ds = (ds.to_iter_dataset(read_options).batch(batch, drop_remainder=True, batch_fn=list)
             .map(BatchAssembler(shapes, shared=workers > 0)))
    if workers > 0:
        it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers), worker_init_fn=_worker_init)
    return iter(it_ds)
