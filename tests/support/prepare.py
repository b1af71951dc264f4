"""A small ``folder`` corpus for the prepare tests (multiprocess and Beam runners) and reading back what they wrote."""
from __future__ import annotations

from microemo_jax.config import load_config
from microemo_jax.data.records import tfds_builder
from tests.support.media import moving_face_frames, noise_frames, write_h264_mp4, write_mjpeg_avi

SMALL = ['model.num_frames=2', 'model.vision.image_size=32', 'model.vision.patch_size=16',
         'model.micro_expression.num_crops=2', 'model.max_utterances=2', 'data.max_mel_frames=100']


def small_config(*extra):
    return load_config('configs/emer.py:demo', SMALL + list(extra))


def write_labels(raw, reason='She smiles at the camera.'):
    (raw / 'labels.csv').write_text(f'name,openset,reason\na,"[\'happy\']",{reason}\n', encoding='utf-8')


def write_small_corpus(raw) -> None:
    """``a``: a moving face with a mono audio track, a description and OV labels; ``b``: noise, unlabeled."""
    face, _ = moving_face_frames(12, height=64, width=64, face_size=40)
    write_h264_mp4(raw / 'a.mp4', face, audio=dict(sample_rate=16000, channels=1))
    write_mjpeg_avi(raw / 'b.avi', noise_frames(8, 48, 48))
    write_labels(raw)


def fixed_tokenizers(cfg, folder) -> dict:
    """Demo tokenizers trained on two fixed sentences (not on the corpus), as keyword arguments of ``prepare``."""
    from microemo_jax.data.demo_tokenizers import train_demo_tokenizers
    llm, qf = train_demo_tokenizers(
        ['She smiles at the camera. happy She frowns.', 'This frame is sampled at 0.1 second.'],
        str(folder), llm_vocab_size=cfg.model.llm.vocab_size, qformer_vocab_size=cfg.model.image_qformer.vocab_size)
    return dict(tokenizer=llm, qformer_tokenizer=qf)


def records_by_name(out) -> dict:
    """{name: record} over every split of the prepared dataset in ``out``."""
    return {(r['name'].decode() if isinstance(r['name'], bytes) else r['name']): r
            for s in tfds_builder.splits(str(out)) for r in tfds_builder.open_dataset(str(out), s)}
