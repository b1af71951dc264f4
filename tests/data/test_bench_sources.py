"""The MER-UniBench sources on small label files written in the datasets' published layouts (column names
and formats as the real files have them: BOMs, CRLF, quoted fields, extra columns, Windows-1252
punctuation, missing clips). No dataset file is committed: every file here is written by the test."""
from __future__ import annotations

import csv
import io
import os

import av
import numpy as np
import pytest

from microemo_jax.data.raw import bench, iemocap
from microemo_jax.data.raw.bench_files import fix_c1, read_table
from microemo_jax.data.raw.segments import cut_clip
from microemo_jax.data.speech.decode import load_audio
from microemo_jax.data.video import probe
from microemo_jax.metrics.protocol import BENCHMARK_QUESTION
from tests.support.media import write_mjpeg_avi

MELD_HEADER = ['Sr No.', 'Utterance', 'Speaker', 'Emotion', 'Sentiment', 'Dialogue_ID', 'Utterance_ID', 'Season',
               'Episode', 'StartTime', 'EndTime']


def write_csv(path, header, rows, *, bom=False, crlf=False, encoding='utf-8'):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\r\n' if crlf else '\n')
    w.writerow(header)
    w.writerows(rows)
    data = buf.getvalue().encode(encoding)
    with open(path, 'wb') as f:
        f.write((b'\xef\xbb\xbf' if bom else b'') + data)


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(b'not decoded by the source layer')
    return path


def codes(skips):
    return sorted(s.reason.split(':', 1)[0] for s in skips)


def test_meld_test_rows_names_gold_and_odd_characters(tmp_path):
    raw = tmp_path / 'MELD.Raw'
    write_csv(raw / 'test_sent_emo.csv', MELD_HEADER, [
        ['1', 'Oh my God, he\x92s lost it.', 'Monica', 'surprise', 'negative', '0', '0', '1', '1', '0:0:1,0', '0:0:2,0'],
        ['2', 'Yeah\xa0right', 'Joey', 'Joy', 'positive', '0', '1', '1', '1', '0:0:3,0', '0:0:4,0'],
        ['3', 'Missing clip.', 'Ross', 'neutral', 'neutral', '2', '5', '1', '1', '0:0:5,0', '0:0:6,0'],
        ['4', 'Bad label.', 'Ross', 'confused', 'neutral', '3', '0', '1', '1', '0:0:7,0', '0:0:8,0'],
    ], bom=True, crlf=True)
    with open(raw / 'test_sent_emo.csv', 'a', encoding='utf-8') as f:
        f.write('5,"Quoted, with a trailing comma",Rachel,anger,negative,1,0,1,1,0,0,\r\n')
    for name in ('dia0_utt0', 'dia0_utt1', 'dia1_utt0'):
        touch(raw / 'output_repeated_splits_test' / f'{name}.mp4')
    touch(raw / 'train' / 'train_splits' / 'dia0_utt0.mp4')          # the same clip name in another split
    read = bench.read_bench('meld', str(raw))
    assert read.dataset == 'MELD'
    assert read.gold == {'test_dia0_utt0': 'surprise', 'test_dia0_utt1': 'joy', 'test_dia2_utt5': 'neutral',
                         'test_dia1_utt0': 'anger'}
    clips = {c.name: c for c in read.clips}
    assert sorted(clips) == ['test_dia0_utt0', 'test_dia0_utt1', 'test_dia1_utt0']
    assert clips['test_dia0_utt0'].video.endswith(os.path.join('output_repeated_splits_test', 'dia0_utt0.mp4'))
    assert clips['test_dia0_utt0'].subtitle == 'Oh my God, he’s lost it.'
    assert clips['test_dia0_utt1'].subtitle == 'Yeah right'
    assert clips['test_dia1_utt0'].subtitle == 'Quoted, with a trailing comma'
    c = clips['test_dia0_utt1']
    assert (c.question, c.split, c.openset, c.answer_kind) == (BENCHMARK_QUESTION, 'test', ['joy'], 'ov')
    assert codes(read.skips) == ['malformed_row', 'video_missing']
    assert 'dia2_utt5' in next(s.reason for s in read.skips if s.name == 'test_dia2_utt5')


def test_meld_file_saved_as_windows_1252_is_read_and_said(tmp_path):
    write_csv(tmp_path / 'test_sent_emo.csv', MELD_HEADER,
              [['1', 'It’s fine…', 'Joey', 'joy', 'positive', '4', '2', '1', '1', '0', '0']], encoding='cp1252')
    touch(tmp_path / 'test' / 'dia4_utt2.mp4')
    read = bench.read_bench('meld', str(tmp_path))
    assert [c.subtitle for c in read.clips] == ['It’s fine…']
    assert any('Windows-1252' in n for n in read.notes)


def test_read_table_rules(tmp_path):
    path = tmp_path / 't.csv'
    path.write_bytes(b'\xef\xbb\xbfName ,Extra,EMO\r\na,x,happy\r\nb,y\r\nc,z,sad,,\r\nd,z,sad,more\r\n')
    rows, skips, notes = read_table(str(path), ('name', 'emo'))
    assert [r[1]['name'] for r in rows] == ['a', 'c']
    assert [s.reason.split(':')[0] for s in skips] == ['malformed_row', 'malformed_row']
    with pytest.raises(ValueError, match='lacks column'):
        read_table(str(path), ('name', 'valence'))
    assert fix_c1('a\x93b\x94\x81') == 'a“b”'


def _emo_eval(session, dialog, lines):
    path = session / 'dialog' / 'EmoEvaluation' / f'{dialog}.txt'
    os.makedirs(path.parent, exist_ok=True)
    text = '% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\r\n\r\n'
    for start, end, name, code in lines:
        text += f'[{start:.4f} - {end:.4f}]\t{name}\t{code}\t[2.5000, 2.5000, 2.5000]\r\n'
        text += 'C-E2:\tNeutral;\t()\r\nA-E3:\tval 3; act 2; dom  2;\t()\r\n\r\n'
    path.write_text(text, encoding='utf-8')


def test_iemocap_session5_four_classes_and_where_the_video_comes_from(tmp_path):
    root = tmp_path / 'IEMOCAP_full_release'
    s1, s5 = root / 'Session1', root / 'Session5'
    _emo_eval(s1, 'Ses01F_impro01', [(1.0, 2.0, 'Ses01F_impro01_F000', 'neu')])
    _emo_eval(s5, 'Ses05M_impro01', [(1.5, 3.25, 'Ses05M_impro01_F000', 'exc'),
                                     (4.0, 5.0, 'Ses05M_impro01_M001', 'ang'),
                                     (6.0, 7.0, 'Ses05M_impro01_F002', 'fru'),
                                     (8.0, 9.0, 'Ses05M_impro01_M003', 'hap')])
    _emo_eval(s5, 'Ses05F_script01_1', [(0.5, 1.0, 'Ses05F_script01_1_F000', 'sad')])
    (s5 / 'dialog' / 'transcriptions').mkdir(parents=True)
    (s5 / 'dialog' / 'transcriptions' / 'Ses05M_impro01.txt').write_text(
        'Ses05M_impro01_F000 [001.5000-003.2500]: I got it!\nM: [LAUGHTER]\n', encoding='utf-8')
    touch(s5 / 'dialog' / 'avi' / 'DivX' / 'Ses05M_impro01.avi')
    touch(s5 / 'sentences' / 'wav' / 'Ses05M_impro01' / 'Ses05M_impro01_F000.wav')
    touch(root / 'subvideo-tgt' / 'Ses05M_impro01_M003.avi')           # already cut: used as it is
    read = bench.read_bench('iemocap', str(tmp_path))
    assert read.gold == {'Ses05M_impro01_F000': 'happy', 'Ses05M_impro01_M001': 'anger',
                         'Ses05M_impro01_M003': 'happy', 'Ses05F_script01_1_F000': 'sad'}
    clips = {c.name: c for c in read.clips}
    f000 = clips['Ses05M_impro01_F000']
    assert (f000.segment, f000.crop, f000.subtitle) == ((1.5, 3.25), 'right', 'I got it!')
    assert f000.video.endswith('Ses05M_impro01.avi') and f000.audio_file.endswith('Ses05M_impro01_F000.wav')
    assert clips['Ses05M_impro01_M001'].crop == 'left'
    m003 = clips['Ses05M_impro01_M003']
    assert (m003.segment, m003.crop) == (None, None) and m003.video.endswith('Ses05M_impro01_M003.avi')
    assert codes(read.skips) == ['video_missing']                       # the script dialog has no video
    assert any('outside the 4 classes' in n for n in read.notes)
    assert iemocap.speaker_half('Ses01F_impro01_F000') == 'left'


MOSI_HEADER = ['video_id', 'clip_id', 'text', 'label', 'annotation', 'mode']
SIMS_HEADER = ['video_id', 'clip_id', 'text', 'label', 'label_T', 'label_A', 'label_V', 'annotation', 'mode']


def test_mosi_label_csv_and_raw_clips(tmp_path):
    write_csv(tmp_path / 'label.csv', MOSI_HEADER, [
        ['03bSnISJMiM', '1', 'a lot of sad parts', '-1.8', 'Negative', 'test'],
        ['03bSnISJMiM', '10', 'but i liked it', '2.4', 'Positive', 'test'],
        ['_dI--eQ6qVU', '2', 'meh', '0.0', 'Neutral', 'test'],
        ['_dI--eQ6qVU', '3', 'train row', '1.0', 'Positive', 'train'],
        ['_dI--eQ6qVU', '4', 'bad', 'n/a', 'Neutral', 'test'],
        ['_dI--eQ6qVU', '5', 'bad split', '1.0', 'Positive', 'holdout'],
    ])
    touch(tmp_path / 'Raw' / '03bSnISJMiM' / '1.mp4')
    touch(tmp_path / 'Raw' / '03bSnISJMiM' / '10.MP4')
    touch(tmp_path / 'Video' / 'Segmented' / '_dI--eQ6qVU_2.mp4')      # the original MOSI release's flat clips
    read = bench.read_bench('cmumosi', str(tmp_path))
    assert read.gold == {'03bSnISJMiM_1': -1.8, '03bSnISJMiM_10': 2.4, '_dI--eQ6qVU_2': 0.0}
    assert sorted(c.name for c in read.clips) == sorted(read.gold)
    c = next(c for c in read.clips if c.name == '03bSnISJMiM_10')
    assert (c.answer_kind, c.openset, c.question, c.subtitle) == (None, None, BENCHMARK_QUESTION, 'but i liked it')
    assert codes(read.skips) == ['malformed_row', 'malformed_row']


def test_sims_four_digit_names_and_simsv2_meta(tmp_path):
    sims, v2 = tmp_path / 'sims', tmp_path / 'simsv2'
    write_csv(sims / 'label.csv', SIMS_HEADER, [['video_0001', '1', '我很开心', '0.8', '0.6', '1.0', '0.4',
                                                  'Positive', 'test'],
                                                 ['video_0001', '2', '还行', '-0.2', '0', '0', '0', 'Negative',
                                                  'valid']])
    touch(sims / 'Raw' / 'video_0001' / '0001.mp4')
    read = bench.read_bench('sims', str(sims))
    assert read.gold == {'video_0001_0001': 0.8} and read.clips[0].video.endswith('0001.mp4')
    write_csv(v2 / 'meta.csv', SIMS_HEADER, [['aqgy3_0001', '00000', '好', '-0.6', '0', '0', '0', 'Negative',
                                              'test']])
    touch(v2 / 'Raw' / 'aqgy3_0001' / '00000.mp4')
    read = bench.read_bench('simsv2', str(v2))
    assert read.gold == {'aqgy3_0001_00000': -0.6} and len(read.clips) == 1


def test_sims_as_first_released_label_m_and_index_files(tmp_path):
    meta = tmp_path / 'metadata'
    write_csv(meta / 'sentiment' / 'label_M.csv', ['video_id', 'clip_id', 'label', 'annotation'],
              [['video_0001', '1', '0.8', 'Positive'], ['video_0001', 'x,y', '0.2'],          # unreadable: row 1
               ['video_0002', '7', '-0.4', 'Negative'], ['video_0003', '2', '0.0', 'Neutral']])
    write_csv(meta / 'test_index.csv', ['index'], [['0'], ['2'], ['9']])                     # positions, 0-based
    write_csv(meta / 'Translation.csv', ['video_id', 'clip_id', 'Chinese', 'English'],
              [['video_0002', '0007', '不', 'No.']])
    touch(tmp_path / 'Raw' / 'video_0002' / '0007.mp4')
    read = bench.read_bench('sims', str(tmp_path))
    assert read.gold == {'video_0001_0001': 0.8, 'video_0002_0007': -0.4}
    assert [(c.name, c.subtitle) for c in read.clips] == [('video_0002_0007', 'No.')]
    assert codes(read.skips) == ['malformed_row', 'malformed_row', 'video_missing']
    assert 'label_M.csv' in read.layout


def test_mer2024_first_half_mer2023_test1_and_ovmerdplus_names(tmp_path):
    m24 = tmp_path / 'mer2024'
    write_csv(m24 / 'semi-label.csv', ['name', 'discrete'],
              [[f'sample_{i:08d}', e] for i, e in enumerate(['happy', 'sad', 'worried', 'angry', 'neutral'])])
    for i in range(5):
        touch(m24 / 'video-unlabeled' / f'sample_{i:08d}.mp4')
    read = bench.read_bench('mer2024', str(m24))
    assert read.gold == {'sample_00000000': 'happy', 'sample_00000001': 'sad'}       # int(5 / 2) = 2 rows
    m23 = tmp_path / 'mer2023'
    write_csv(m23 / 'test1-label.csv', ['name', 'discrete', 'valence'],
              [['sample_00000007', 'worried', '-1.2'], ['sample_00000008', 'surprise', '0.5']])
    touch(m23 / 'test1' / 'sample_00000007.avi')
    write_csv(m23 / 'subtitle_chieng.csv', ['name', 'chinese', 'english'], [['sample_00000007', '我', 'Me.']])
    read = bench.read_bench('mer2023', str(m23))
    assert read.gold == {'sample_00000007': 'worried', 'sample_00000008': 'surprise'}
    assert [(c.name, c.subtitle, c.openset) for c in read.clips] == [('sample_00000007', 'Me.', ['worried'])]
    ov = tmp_path / 'ovmerdplus'
    write_csv(ov / 'ovlabel.csv', ['name', 'openset'], [['samplenew3_1', "['happy', 'Excited']"],
                                                        ['samplenew3_2', '[]'], ['samplenew3_9', 'sad']])
    write_csv(ov / 'subtitle_eng.csv', ['name', 'sentence'], [['samplenew3_1', 'Great!'], ['samplenew3_2', 'Hm.'],
                                                              ['samplenew3_3', 'No label.']])
    for n in ('samplenew3_1', 'samplenew3_2', 'samplenew3_3'):
        touch(ov / 'video' / f'{n}.mp4')
    read = bench.read_bench('ovmerdplus', str(ov))
    assert read.gold == {'samplenew3_1': "['happy', 'Excited']", 'samplenew3_2': '[]'}
    assert {c.name: c.openset for c in read.clips} == {'samplenew3_1': ['happy', 'excited'],
                                                       'samplenew3_2': ['neutral']}
    assert codes(read.skips) == ['no_label']


def _object(value):
    out = np.empty((), dtype=object)
    out[()] = value
    return out


def test_affectgpt_processed_npz_layout(tmp_path):
    np.savez_compressed(tmp_path / 'label.npz', train_corpus=_object({'train_dia0_utt0': {'emo': 1, 'val': -10}}),
                        test_corpus=_object({'test_dia0_utt0': {'emo': np.int64(1), 'val': -10},
                                             'test_dia0_utt1': {'emo': 6, 'val': -10}}))
    touch(tmp_path / 'subvideo' / 'test_dia0_utt0.mp4')
    touch(tmp_path / 'subvideo' / 'test_dia0_utt1.mp4')
    touch(tmp_path / 'subaudio' / 'test_dia0_utt1.wav')
    write_csv(tmp_path / 'transcription-engchi-polish.csv', ['name', 'chinese', 'english'],
              [['test_dia0_utt1', '哇', 'Wow.']])
    read = bench.read_bench('meld', str(tmp_path))
    assert read.gold == {'test_dia0_utt0': 'joy', 'test_dia0_utt1': 'surprise'}
    assert 'processed' in read.layout
    clip = {c.name: c for c in read.clips}['test_dia0_utt1']
    assert clip.subtitle == 'Wow.' and clip.audio_file.endswith('test_dia0_utt1.wav')


def test_no_label_files_and_unsafe_names_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="MELD's own label files"):
        bench.read_bench('meld', str(tmp_path))
    with pytest.raises(ValueError, match='unknown benchmark source'):
        bench.read_bench('meldx', str(tmp_path))
    write_csv(tmp_path / 'label.csv', MOSI_HEADER, [['..', '1', 't', '1.0', 'Positive', 'test'],
                                                    ['v', '1', 't', '1.0', 'Positive', 'test'],
                                                    ['v', '1', 't', '2.0', 'Positive', 'test']])
    read = bench.read_bench('cmumosei', str(tmp_path))
    assert codes(read.skips) == ['duplicate_name', 'unsafe_name', 'video_missing']
    assert read.gold == {'.._1': 1.0, 'v_1': 1.0}


def test_cut_clip_keeps_the_span_and_the_speakers_half(tmp_path):
    frames = np.zeros((50, 48, 96, 3), np.uint8)           # 2 s at 25 fps: a red left actor, a blue right one
    frames[:, :, :48, 0] = 220
    frames[:, :, 48:, 2] = 220
    src = write_mjpeg_avi(tmp_path / 'dialog.avi', frames, audio=dict(sample_rate=16000, channels=1))
    video, wav = cut_clip(src, str(tmp_path), 'Ses05M_impro01_F000', segment=(0.4, 1.2), crop='right')
    assert os.path.basename(video) == 'Ses05M_impro01_F000.mp4'
    info = probe(video)
    assert (info.width, info.height) == (48, 48)
    assert abs(info.duration - 0.8) < 0.09
    with av.open(video) as c:
        first = next(c.decode(video=0)).to_ndarray(format='rgb24')
    assert first[..., 2].mean() > 150 and first[..., 0].mean() < 60          # the right half: blue
    assert abs(load_audio(wav).duration - 0.8) < 0.01
    with pytest.raises(ValueError, match='no video frame'):
        cut_clip(src, str(tmp_path), 'late', segment=(5.0, 6.0))
