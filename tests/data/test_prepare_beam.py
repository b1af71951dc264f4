"""``prepare --runner beam`` (DirectRunner) writes the same records as the multiprocess path.

Needs apache-beam, which cannot share requirements.lock: runs in the environment ``make beam-venv`` builds
(``make test-beam``) and is skipped elsewhere.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('apache_beam')

from microemo_jax.prepare import main as prepare_main, prepare  # noqa: E402
from tests.support.media import moving_face_frames, write_h264_mp4  # noqa: E402
from tests.support.prepare import SMALL, fixed_tokenizers, records_by_name, small_config, write_small_corpus  # noqa: E402

pytestmark = pytest.mark.integration  # prepare end to end through Apache Beam's DirectRunner


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    raw = tmp_path_factory.mktemp('beam_raw')
    write_small_corpus(raw)
    face2, _ = moving_face_frames(10, height=64, width=64, face_size=36)
    write_h264_mp4(raw / 'c.mp4', face2)
    return raw, fixed_tokenizers(small_config(), tmp_path_factory.mktemp('beam_tok'))


def test_beam_direct_runner_gives_the_records_of_the_multiprocess_path(corpus, tmp_path):
    raw, tok = corpus
    cfg = small_config()
    local = prepare(cfg, 'folder', str(raw), str(tmp_path / 'local'), workers=2, shard_size=1, **tok)
    beam = prepare(cfg, 'folder', str(raw), str(tmp_path / 'beam'), shard_size=1, runner='beam',
                   beam_options='--runner=DirectRunner --direct_num_workers=1', **tok)
    assert beam['written_names'] == local['written_names'] and beam['skipped'] == local['skipped']
    assert beam['splits'] == local['splits']
    want, got = records_by_name(tmp_path / 'local'), records_by_name(tmp_path / 'beam')
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
