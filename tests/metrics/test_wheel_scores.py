"""Emotion-wheel F: MER's mapping chain, skipping and empty-prediction rules, F from mean P and R,
and a tampered wheel_mapping.npz refused before any of its code runs."""
from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest

from microemo_jax.metrics import load_wheel, score_wheel
from microemo_jax.metrics.safe_npz import UnsafePickleError
from tests.support.wheel import MAPS, object_array, write_wheel_json, write_wheel_npz

GOLD = {'s1': ['Happy', 'sad'], 's2': ['worried'], 's3': ['calm'], 's4': ['angry']}
PRED = {'s1': ['joyful'], 's2': ['angry', 'calm'], 's3': ['happy'], 'zzz': ['sad']}   # s4 missing


@pytest.fixture
def wheel(tmp_path):
    return load_wheel(write_wheel_npz(tmp_path / 'wheel_mapping.npz'))


def test_mapping_goes_format_then_sorted_raw_then_wheel(wheel):
    w1, w2 = wheel.wheels['wheel1'], wheel.wheels['wheel2']
    assert wheel.map_label('joyful', w1['level2']) == 'joy'         # raw [joy, happy] sorted -> 'happy' -> joy
    assert wheel.map_label('worried', w1['level2']) == 'fear'       # sorted [anxiety, fear, worry]: w1 lacks anxiety
    assert wheel.map_label('worried', w2['level2']) == 'scared'     # w2 has anxiety
    assert wheel.map_label('calm', w1['level1']) == ''              # in format_mapping, in no wheel
    assert wheel.map_label('elated', w1['level1']) == ''            # not in format_mapping


def test_hand_computed_scores(wheel):
    out = score_wheel(GOLD, PRED, wheel)
    # level1 (both wheels): s1 P=1 R=1/2; s2 P=1 R=1; s3 skipped (gold 'calm' maps nowhere); s4 missing -> 0, 0.
    # P = 2/3, R = 1/2, F = 2PR/(P+R) = 4/7 (a mean of per-sample F1 would give 5/9).
    # level2: s1 1, 1/2; s2 {fear} vs {anger} (w1), {scared} vs {mad} (w2) -> 0, 0; s4 0, 0.
    # P = 1/3, R = 1/6, F = 2/9.
    for name in ('wheel1', 'wheel2'):
        assert out['wheels'][name]['level1'] == pytest.approx({'f': 4 / 7, 'precision': 2 / 3, 'recall': 1 / 2, 'n': 3})
        assert out['wheels'][name]['level2'] == pytest.approx({'f': 2 / 9, 'precision': 1 / 3, 'recall': 1 / 6, 'n': 3})
    assert out['ew_level1_f'] == pytest.approx(4 / 7)
    assert out['ew_level2_f'] == pytest.approx(2 / 9)
    assert out['ew_mean'] == pytest.approx((4 / 7 + 2 / 9) / 2)
    assert out['ignored_predictions'] == ['zzz']


def test_wheels_are_averaged(tmp_path):
    maps = {**MAPS, 'wheel_map_whole': {**MAPS['wheel_map_whole'],
                                        'wheel3': {'level1': {}, 'level2': {'happy': 'happy'}}}}
    out = score_wheel({'a': ['happy']}, {'a': ['happy']}, load_wheel(write_wheel_npz(tmp_path / 'w.npz', maps)))
    # wheel1/2 score 1 at both levels; wheel3 level1 maps nothing (n = 0 -> 0), level2 scores 1.
    assert out['wheels']['wheel3']['level1'] == {'f': 0.0, 'precision': 0.0, 'recall': 0.0, 'n': 0}
    assert out['ew_level1_f'] == pytest.approx(2 / 3) and out['ew_level2_f'] == pytest.approx(1.0)


def test_json_wheel_equals_npz(tmp_path, wheel):
    from_json = load_wheel(write_wheel_json(tmp_path / 'wheel.json'))
    assert score_wheel(GOLD, PRED, from_json) == score_wheel(GOLD, PRED, wheel)


def test_bad_wheel_files_say_what_is_wrong(tmp_path):
    path = tmp_path / 'partial.npz'
    np.savez(path, format_mapping=object_array(MAPS['format_mapping']))
    with pytest.raises(ValueError, match=r"missing \['raw_mapping', 'wheel_map_whole'\]"):
        load_wheel(path)
    bad = {**MAPS, 'wheel_map_whole': {'wheel1': {'level1': {}}}}
    with pytest.raises(ValueError, match="wheel 'wheel1' needs the maps"):
        load_wheel(write_wheel_json(tmp_path / 'bad.json', bad))
    (tmp_path / 'not.npz').write_text('hello')
    with pytest.raises(ValueError, match='not an .npz'):
        load_wheel(tmp_path / 'not.npz')
    with pytest.raises(FileNotFoundError, match='nowhere.npz'):
        load_wheel(tmp_path / 'nowhere.npz')


class _Payload:
    """Unpickling this creates the marker file: what a tampered mapping could do to np.load(allow_pickle=True)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def _tampered(tmp_path, marker):
    maps = {**MAPS, 'raw_mapping': {**MAPS['raw_mapping'], 'happy': [_Payload(marker)]}}
    return write_wheel_npz(tmp_path / 'wheel_mapping.npz', maps)


def test_the_payload_is_live(tmp_path):
    """Control for the next test: numpy's own loader with pickles allowed does run it."""
    marker = tmp_path / 'ran'
    path = _tampered(tmp_path, marker)
    with np.load(path, allow_pickle=True) as z:
        z['raw_mapping']
    assert marker.exists()


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / 'ran'
    path = _tampered(tmp_path, marker)
    with pytest.raises(UnsafePickleError, match=r"raw_mapping\]: refusing to load.*_io\.open"):
        load_wheel(path)
    assert not marker.exists()


class _Shell:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_a_raw_object_npy_member_calling_a_shell_is_refused(tmp_path):
    """The npy header is written by hand: no numpy array wraps the pickle, it is the pickle itself."""
    marker = tmp_path / 'ran'
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (), }"
    header += b' ' * (64 - 10 - len(header) - 1) + b'\n'
    member = b'\x93NUMPY\x01\x00' + len(header).to_bytes(2, 'little') + header + pickle.dumps(_Shell(marker))
    with zipfile.ZipFile(tmp_path / 'w.npz', 'w') as zf:
        zf.writestr('format_mapping.npy', member)
    with pytest.raises(UnsafePickleError, match=r'format_mapping\]: refusing to load.*system'):
        load_wheel(tmp_path / 'w.npz')
    assert not marker.exists()


MER_WHEEL = os.environ.get('MICROEMO_MER_WHEEL')


@pytest.mark.skipif(not MER_WHEEL, reason="set MICROEMO_MER_WHEEL to MERTools' MER2026 emotion_wheel/wheel_mapping.npz")
def test_mers_own_wheel_file_loads_safely():
    wheel = load_wheel(MER_WHEEL)
    assert (len(wheel.format_mapping), len(wheel.raw_mapping)) == (7356, 1255)
    assert sorted(wheel.wheels) == [f'wheel{k}' for k in range(1, 6)]
