"""prepare end to end on a benchmark source whose clips are spans of longer videos: an IEMOCAP session folder
(written here) whose utterance is cut out of its dialog video, the speaker's half kept, at prepare time."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from microemo_jax.data.records.build import prepare
from microemo_jax.data.records.record import split_jpegs
from microemo_jax.metrics.protocol import BENCHMARK_QUESTION
from tests.support.media import write_mjpeg_avi
from tests.support.prepare import fixed_tokenizers, records_by_name, small_config

pytestmark = pytest.mark.integration  # prepare end to end on real media files


def test_iemocap_utterance_is_cut_from_its_dialog_with_the_speakers_half(tmp_path):
    session = tmp_path / 'IEMOCAP_full_release' / 'Session5'
    (session / 'dialog' / 'EmoEvaluation').mkdir(parents=True)
    (session / 'dialog' / 'EmoEvaluation' / 'Ses05M_impro01.txt').write_text(
        '% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n'
        '[0.8000 - 1.6000]\tSes05M_impro01_F000\texc\t[3.5000, 3.0000, 2.5000]\n', encoding='utf-8')
    frames = np.zeros((60, 48, 96, 3), np.uint8)       # 2.4 s at 25 fps; the left actor red, the right one blue
    frames[:, :, :48, 0] = 220
    frames[:, :, 48:, 2] = 220
    (session / 'dialog' / 'avi' / 'DivX').mkdir(parents=True)
    write_mjpeg_avi(session / 'dialog' / 'avi' / 'DivX' / 'Ses05M_impro01.avi', frames,
                    audio=dict(sample_rate=16000, channels=1))
    cfg = small_config()
    report = prepare(cfg, 'iemocap', str(tmp_path), str(tmp_path / 'out'), workers=1,
                     **fixed_tokenizers(cfg, tmp_path / 'tok'))
    assert report['benchmark']['prepared'] == 1 and report['splits'] == {'test': 1}
    rec = records_by_name(tmp_path / 'out')['Ses05M_impro01_F000']
    assert float(np.max(rec['timestamps'])) < 0.8                        # the span, from 0 s
    first = cv2.imdecode(np.frombuffer(split_jpegs(rec['frames_jpeg'], rec['frame_offsets'])[0], np.uint8),
                         cv2.IMREAD_COLOR)                              # BGR
    assert first[..., 0].mean() > 150 and first[..., 2].mean() < 60      # F speaker of an M-left dialog: right, blue
    assert os.path.isfile(tmp_path / 'out' / 'bench_gold.csv')
    assert BENCHMARK_QUESTION in report['benchmark']['question']
