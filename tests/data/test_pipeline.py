"""Grain pipeline: static shapes, faithful decoding, sharding, seeding, augmentation, iterator state."""
from __future__ import annotations

import functools
import math

import cv2
import grain
import numpy as np
import pytest

from microemo_jax.batch import batch_spec
from microemo_jax.config import load_config
from microemo_jax.data import pipeline
from microemo_jax.data.augment import ClipAugment
from microemo_jax.data.shapes import DataShapes
from tests.support.records import TOKENIZER, make_record

CFG = load_config('configs/emer.py:demo', ['data.batch_size=4', 'data.num_workers=0'])
SHAPES = DataShapes.from_config(CFG)
N_MOD = SHAPES.video_tokens + SHAPES.audio_tokens


# The demo config's record sizes, with a random number of faces per frame; also the pixels before JPEG.
clip = functools.partial(make_record, shapes=SHAPES, num_frames=5, faces_per_frame='random', mel_frames=300,
                         utterances=2, seq_len=120, answer_tokens=24, timestamp_tokens=10, face_size=64,
                         with_images=True)


VARIED = [dict(num_frames=5, mel_frames=300, utterances=2),
          dict(num_frames=8, mel_frames=0, utterances=0, faces_per_frame=[0] * 8),
          dict(num_frames=3, mel_frames=1001, utterances=3),
          dict(num_frames=1, mel_frames=7, utterances=1, seq_len=SHAPES.seq_len, face_size=40), dict(num_frames=6),
          dict(num_frames=2, mel_frames=50), dict(num_frames=7, utterances=1), dict(num_frames=4, mel_frames=800)]


@pytest.fixture(scope='module')
def clips():
    return [clip(f'clip {i} é', seed=i, **kw) for i, kw in enumerate(VARIED)]


@pytest.fixture(scope='module')
def source(clips):
    return [c[0] for c in clips]


def _take(it, n):
    return [next(it) for _ in range(n)]


def _assert_batches_equal(a, b):
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def _pixels(pixels):
    """(..., 3, H, W) uint8 (the batch's pixels; the device normalises them) -> (..., H, W, 3) float in 0..255."""
    assert pixels.dtype == np.uint8
    return np.moveaxis(pixels, -3, -1).astype(np.float32)


def test_batch_keys_shapes_dtypes_match_the_model_contract(source):
    it = pipeline.make_iterator(source, CFG, train=True, process_index=0, process_count=1)
    batch = next(it)
    spec = batch_spec(CFG.model, 4, CFG.data.max_seq_len, mel_frames=CFG.data.max_mel_frames)
    assert set(batch) == set(spec) | {'names'}
    for k, s in spec.items():
        assert batch[k].shape == s.shape and batch[k].dtype == np.dtype(s.dtype), k
    assert batch['names'].shape == (4,) and batch['names'].dtype.kind == 'U'
    assert set(batch['names']) <= {r['name'] for r in source}


def test_a_clip_comes_out_as_it_went_in(clips, source):
    batches = _take(pipeline.make_iterator(source, CFG, train=False, process_index=0, process_count=1), 2)
    T, K, L, U = SHAPES.num_frames, SHAPES.num_crops, SHAPES.timestamp_tokens, SHAPES.max_utterances
    for i, (rec, frames, faces) in enumerate(clips):
        b, row = batches[i // 4], i % 4
        t, n_tok, n_utt = len(frames), len(rec['input_ids']), len(rec['utterances'])
        assert b['names'][row] == rec['name']
        np.testing.assert_array_equal(b['frame_mask'][row], np.arange(T) < t)
        got = _pixels(b['frames'][row, :t])
        assert np.abs(got - np.stack(frames)).mean() < 2.0 and np.abs(got - np.stack(frames)).max() < 40
        assert not b['frames'][row, t:].any()
        np.testing.assert_array_equal(b['timestamps'][row, :t], rec['timestamps'])
        np.testing.assert_array_equal(b['timestamp_ids'][row, :t, :rec['timestamp_ids'].shape[1]], rec['timestamp_ids'])
        n_ts = rec['timestamp_ids'].shape[1]
        assert not b['timestamp_ids'][row, t:].any() and not b['timestamp_mask'][row, :, n_ts:].any()
        fm = np.zeros((T, K), bool)
        fm[:t] = rec['face_mask']
        np.testing.assert_array_equal(b['face_mask'][row], fm)
        got_faces = _pixels(b['faces'][row][fm])
        want = np.stack([cv2.resize(f, (SHAPES.face_size,) * 2, interpolation=cv2.INTER_LINEAR) for f in faces]) \
            if faces else np.zeros((0,) + got_faces.shape[1:])
        assert got_faces.shape == want.shape
        if faces:
            assert np.abs(got_faces - want).mean() < 3.0
        assert not b['faces'][row][~fm].any()
        m = min(rec['audio_mel'].shape[0], SHAPES.mel_frames)
        if m:
            np.testing.assert_array_equal(b['audio_mel'][row, :, :m], rec['audio_mel'][:m].T.astype(np.float32))
        assert not b['audio_mel'][row, :, m:].any()
        np.testing.assert_array_equal(b['audio_mask'][row], np.arange(SHAPES.audio_positions) < math.ceil(m / 2))
        np.testing.assert_array_equal(b['utterances'][row, :n_utt], rec['utterances'])
        np.testing.assert_array_equal(b['utterance_mask'][row], np.arange(U) < n_utt)
        np.testing.assert_array_equal(b['input_ids'][row, :n_tok], rec['input_ids'])
        assert not b['input_ids'][row, n_tok:].any()
        np.testing.assert_array_equal(b['attention_mask'][row], np.arange(SHAPES.seq_len) < n_tok)
        np.testing.assert_array_equal(b['loss_mask'][row, :n_tok], rec['loss_mask'])
        assert not b['loss_mask'][row, n_tok:].any()
        np.testing.assert_array_equal(b['modality_positions'][row], rec['modality_positions'])
        assert b['timestamp_ids'].shape[-1] == L


@pytest.mark.parametrize('workers', [0, 2])
def test_eval_covers_every_clip_once_in_whole_batches(source, workers):
    it = pipeline.make_iterator(source[:6], CFG, train=False, process_index=0, process_count=1, num_workers=workers)
    batches = list(it)
    names = [n for b in batches for n in b['names']]
    whole = 4 * max(workers, 1)                       # every worker's slice is made of whole batches
    assert len(names) == whole * math.ceil(6 / whole)
    assert sorted(n for n in names if n) == sorted(r['name'] for r in source[:6])
    if workers == 0:
        assert names[:6] == [r['name'] for r in source[:6]]      # in order
    for b in batches:                                  # the repeats carry data but no loss
        pad = b['names'] == ''
        assert not b['loss_mask'][pad].any() and b['attention_mask'][pad].any(axis=1).all()


@pytest.mark.parametrize('train', [False, True])
def test_two_processes_get_disjoint_shards_that_cover_the_split(source, train):
    seen = []
    for p in range(2):   # per-process batch 2; 8 clips -> 2 batches each cover one epoch
        it = pipeline.make_iterator(source, CFG, train=train, process_index=p, process_count=2)
        seen.append([n for b in _take(it, 2) for n in b['names']])
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(r['name'] for r in source)


def test_shuffle_is_seeded(source):
    def order(seed):
        it = pipeline.make_iterator(source, CFG, train=True, seed=seed, process_index=0, process_count=1)
        return [list(b['names']) for b in _take(it, 4)]   # 2 epochs
    a, b = order(0), order(1)
    assert a == order(0) and a != b
    assert sorted(sum(a[:2], [])) == sorted(r['name'] for r in source)
    assert a[:2] != a[2:]                                 # each epoch reshuffled
    assert a != [[r['name'] for r in source[i:i + 4]] for i in (0, 4, 0, 4)]


def test_augmentation_is_one_draw_per_clip_and_seeded():
    rec = clip('still', num_frames=6, faces_per_frame=[4] * 6, same_image=True)[0]
    src = [rec] * 4
    it = pipeline.make_iterator(src, CFG, train=True, seed=3, process_index=0, process_count=1)
    b = next(it)
    plain = pipeline.example_from_record(rec, SHAPES)
    for row in range(4):   # identical inputs stay identical across frames and crops: no per-frame jitter
        frames, faces = b['frames'][row, :6], b['faces'][row, :6]
        np.testing.assert_array_equal(frames, np.broadcast_to(frames[:1], frames.shape))
        np.testing.assert_array_equal(faces, np.broadcast_to(faces[:1, :1], faces.shape))
    assert any(not np.allclose(b['frames'][r, 0], plain['frames'][0]) for r in range(4))
    assert len({b['frames'][r, 0].tobytes() for r in range(4)}) > 1      # a fresh draw per clip
    again = next(pipeline.make_iterator(src, CFG, train=True, seed=3, process_index=0, process_count=1))
    np.testing.assert_array_equal(again['frames'], b['frames'])
    np.testing.assert_array_equal(again['faces'], b['faces'])


def test_flip_and_jitter_apply_to_frames_and_faces_together(clips):
    rec = clips[0][0]
    plain = pipeline.example_from_record(rec, SHAPES)
    flipped = pipeline.example_from_record(rec, SHAPES, ClipAugment(flip=True))
    fm = plain['face_mask']
    fr = plain['frame_mask']
    np.testing.assert_array_equal(flipped['frames'][fr], plain['frames'][fr][..., ::-1])
    np.testing.assert_array_equal(flipped['faces'][fm], plain['faces'][fm][..., ::-1])
    bright = pipeline.example_from_record(rec, SHAPES, ClipAugment(brightness=0.1))
    for key, mask in (('frames', plain['frame_mask']), ('faces', fm)):
        diff = _pixels(bright[key][mask]) - _pixels(plain[key][mask])
        assert 20 < diff.mean() < 26    # +0.1 of full scale, less where it clips at 255


def test_cropped_frames_keep_their_size():
    rec = clip('crop', num_frames=3)[0]
    ex = pipeline.example_from_record(rec, SHAPES, ClipAugment(crop=(0.1, 0.05, 0.8, 0.9)))
    assert ex['frames'].shape == (SHAPES.num_frames, 3, SHAPES.image_size, SHAPES.image_size)
    assert not np.allclose(ex['frames'][0], pipeline.example_from_record(rec, SHAPES)['frames'][0])


@pytest.mark.parametrize('workers', [0, 2])
def test_iterator_state_restores_the_exact_next_batches(source, workers):
    it = pipeline.make_iterator(source, CFG, train=True, process_index=0, process_count=1, num_workers=workers)
    _take(it, 3)
    state = it.get_state()
    expected = _take(it, 3)
    fresh = pipeline.make_iterator(source, CFG, train=True, process_index=0, process_count=1, num_workers=workers)
    fresh.set_state(state)
    _assert_batches_equal(_take(fresh, 3), expected)
    for i in (it, fresh):
        if hasattr(i, 'close'):
            i.close()


def test_orbax_checkpoint_round_trip(source, tmp_path):
    import orbax.checkpoint as ocp
    it = pipeline.make_iterator(source, CFG, train=True, process_index=0, process_count=1)
    _take(it, 2)
    with ocp.CheckpointManager(tmp_path / 'ckpt', item_names=('meta', 'dataset')) as mngr:
        mngr.save(7, args=ocp.args.Composite(meta=ocp.args.JsonSave({'step': 7}),
                                             dataset=grain.checkpoint.CheckpointSave(it)))
        mngr.wait_until_finished()
    expected = _take(it, 2)
    fresh = pipeline.make_iterator(source, CFG, train=True, process_index=0, process_count=1)
    with ocp.CheckpointManager(tmp_path / 'ckpt', item_names=('meta', 'dataset')) as mngr:
        restored = mngr.restore(mngr.latest_step(), args=ocp.args.Composite(
            meta=ocp.args.JsonRestore(), dataset=grain.checkpoint.CheckpointRestore(fresh)))
    assert restored['meta'] == {'step': 7}
    _assert_batches_equal(_take(fresh, 2), expected)


def _first_error(source, **kw):
    with pytest.raises(ValueError) as e:
        it = pipeline.make_iterator(source, CFG, train=False, **{'process_index': 0, 'process_count': 1, **kw})
        _take(it, len(source))
    return str(e.value)


def test_errors_name_the_clip_or_the_setting(source):
    too_many = clip('chatty clip', utterances=SHAPES.max_utterances + 1)[0]
    msg = _first_error(source[:5] + [too_many])
    assert 'chatty clip' in msg and 'max_utterances' in msg
    too_long = clip('wordy clip', seq_len=SHAPES.seq_len + 1)[0]
    msg = _first_error(source[:5] + [too_long])
    assert 'wordy clip' in msg and 'max_seq_len' in msg
    other = clip('other config', num_modality=N_MOD - 8)[0]
    msg = _first_error([other] + source[:3])                    # caught before any worker starts
    assert 'other config' in msg and 'prepared for another config' in msg and str(N_MOD) in msg
    llm_ids = dict(source[0], name='llm ids', timestamp_tokenizer='llm')   # ids of the other tokenizer
    msg = _first_error([llm_ids] + source[:3])
    assert 'llm ids' in msg and "timestamp_tokenizer='bert'" in msg and "'llm' tokenizer" in msg
    other_tokenizer = dict(source[0], name='other tokens', tokenizer='sha256:ffffffffffffffff')
    msg = _first_error(source[:2] + [other_tokenizer], tokenizer=TOKENIZER)  # a run whose tokenizer is TOKENIZER
    assert 'other tokens' in msg and 'tokenizer sha256:ffffffffffffffff' in msg and TOKENIZER in msg
    assert len(_take(pipeline.make_iterator(source, CFG, train=False, process_index=0, process_count=1,
                                            tokenizer=TOKENIZER), 2)) == 2
    msg = _first_error(source, process_count=3)
    assert 'data.batch_size=4' in msg and '3 processes' in msg
    bad = dict(source[0], name='broken jpeg', frames_jpeg=np.zeros_like(source[0]['frames_jpeg']))
    msg = _first_error(source[:3] + [bad])
    assert 'broken jpeg' in msg and 'JPEG' in msg


# ----------------------------------------------------------------------------------------------- TFDS
def _write_tfds(out_dir, splits):
    """A TFDS folder with our spec (``dataset_spec``: a folder with another one is refused), written by TFDS itself."""
    import tensorflow_datasets as tfds

    from microemo_jax.data.records import dataset_spec
    first = next(iter(splits.values()))[0]
    features = dataset_spec.features(first['face_mask'].shape[1], first['timestamp_ids'].shape[1],
                                     first['audio_mel'].shape[1])

    class MicroemoClips(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version(dataset_spec.VERSION)

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=features)

        def _split_generators(self, dl_manager):
            return {name: self._generate_examples(recs) for name, recs in splits.items()}

        def _generate_examples(self, recs):
            for r in recs:
                yield r['name'], r

    builder = MicroemoClips(data_dir=str(out_dir), file_format='array_record')
    builder.download_and_prepare()
    return builder.data_dir


def test_open_split_reads_a_prepared_tfds_folder(source, tmp_path):
    _write_tfds(tmp_path / 'prepared', {'train': source[:4], 'validation': source[4:6]})
    src = pipeline.open_split(str(tmp_path / 'prepared'), 'validation')   # the --out folder: NAME/VERSION below
    assert len(src) == 2
    batch = next(pipeline.make_iterator(src, CFG, train=False, process_index=0, process_count=1))
    assert sorted(batch['names'][:2]) == sorted(r['name'] for r in source[4:6])
    want = pipeline.example_from_record(source[4], SHAPES)
    row = list(batch['names']).index(source[4]['name'])
    for k, v in want.items():
        np.testing.assert_array_equal(batch[k][row], v, err_msg=k)
    with pytest.raises(ValueError, match="no split 'test'.*'train', 'validation'"):
        pipeline.open_split(str(tmp_path / 'prepared'), 'test')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='is not a prepared dataset'):
        pipeline.open_split(str(tmp_path / 'empty'), 'train')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        pipeline.open_split(str(tmp_path / 'missing'), 'train')


def test_text_dropout_hides_the_words_of_a_share_of_training_clips_only():
    rec = dict(clip('words', seed=11)[0], words_span=np.array([10, 30], np.int32))
    n_tok = len(rec['input_ids'])

    def hidden(cfg, train):
        it = pipeline.make_iterator([rec] * 4, cfg, train=train, seed=5, process_index=0, process_count=1)
        out = []
        for b in _take(it, 8 if train else 1):
            for mask in b['attention_mask']:
                words, rest = mask[10:30], np.delete(mask[:n_tok], np.arange(10, 30))
                assert words.all() or not words.any()      # the whole span, or none of it
                assert rest.all()                          # nothing else is touched
                out.append(not words.any())
        return out

    half = load_config('configs/emer.py:demo', ['data.batch_size=4', 'data.num_workers=0', 'data.text_dropout=0.5'])
    assert 0.2 < np.mean(hidden(half, train=True)) < 0.8
    assert not any(hidden(half, train=False))
    assert CFG.data.text_dropout == 0 and not any(hidden(CFG, train=True))
