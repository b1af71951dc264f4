"""``prepare --runner beam`` (DirectRunner) writes the same records as the multiprocess path.

Needs apache-beam, which cannot share requirements.lock: runs in the environment ``make beam-venv`` builds
(``make test-beam``) and is skipped elsewhere.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('apache_beam')

from microemo_jax.prepare import main as prepare_main, prepare  # noqa: E402

from tests.support.media import moving_face_frames, noise_frames, write_h264_mp4, write_mjpeg_avi  # noqa: E402
from tests.data.test_prepare import SMALL, _records, small_config, write_labels  # noqa: E402


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    from microemo_jax.data import tokenizers as tokenizers_lib
    raw = tmp_path_factory.mktemp('beam_raw')
    face, _ = moving_face_frames(12, height=64, width=64, face_size=40)
    write_h264_mp4(raw / 'a.mp4', face, audio=dict(sample_rate=16000, channels=1))
    write_mjpeg_avi(raw / 'b.avi', noise_frames(8, 48, 48))
    face2, _ = moving_face_frames(10, height=64, width=64, face_size=36)
    write_h264_mp4(raw / 'c.mp4', face2)
    write_labels(raw)
    cfg = small_config()
    llm, qf = tokenizers_lib.train_demo_tokenizers(
        ['She smiles at the camera. happy She frowns.', 'This frame is sampled at 0.1 second.'],
        str(tmp_path_factory.mktemp('beam_tok')), llm_vocab_size=cfg.model.llm.vocab_size,
        qformer_vocab_size=cfg.model.image_qformer.vocab_size)
    return raw, dict(tokenizer=llm, qformer_tokenizer=qf)


def test_beam_direct_runner_gives_the_records_of_the_multiprocess_path(corpus, tmp_path):
    raw, tok = corpus
    cfg = small_config()
    local = prepare(cfg, 'folder', str(raw), str(tmp_path / 'local'), workers=2, shard_size=1, **tok)
    beam = prepare(cfg, 'folder', str(raw), str(tmp_path / 'beam'), shard_size=1, runner='beam',
                   beam_options='--runner=DirectRunner --direct_num_workers=1', **tok)
    assert beam['written_names'] == local['written_names'] and beam['skipped'] == local['skipped']
    assert beam['splits'] == local['splits']
    want, got = _records(tmp_path / 'local'), _records(tmp_path / 'beam')
    assert set(got) == set(want) and len(got) >= 3
    for name, rec in want.items():
        assert set(got[name]) == set(rec), name
        for key, value in rec.items():
            a, b = np.asarray(value), np.asarray(got[name][key])
            assert a.dtype == b.dtype and a.shape == b.shape and (a == b).all(), (name, key)


def test_command_line_runner_beam_and_a_rerun_reuses_the_shards(corpus, tmp_path, capsys):
    raw, tok = corpus
    args = ['--source', 'folder', '--raw', str(raw), '--out', str(tmp_path / 'o'), '--runner', 'beam',
            '--beam-options=--runner=DirectRunner', '--tokenizer', tok['tokenizer'],
            '--qformer-tokenizer', tok['qformer_tokenizer'], '--config', 'configs/emer.py:demo',
            '--shard-size', '2'] + [f'--config.{o}' for o in SMALL]
    prepare_main(args)
    first = capsys.readouterr().out
    assert '"shards_processed": 2' in first
    prepare_main(args)
    assert '"shards_resumed": 2' in capsys.readouterr().out
