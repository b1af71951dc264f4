"""MER-UniBench hit rate, emotion-wheel F and WAF on hand-worked cases (clusters: tests/metrics/wheel_folder.py).

Each case is built so that dropping one official quirk changes the number; the numbers were also checked
against AffectGPT's own functions run on the same folder (see docs/metrics_benchmark.md).
"""
from __future__ import annotations

import numpy as np
import pytest

from microemo_jax.metrics.benchmark import hit_rate, waf, weighted_f1, wheel_fscore
from microemo_jax.metrics.emotion_wheel import load_wheel_folder
from microemo_jax.metrics.wheel import Wheel
from tests.metrics.wheel_folder import write_wheel_folder


@pytest.fixture(scope='module')
def table(tmp_path_factory):
    return load_wheel_folder(write_wheel_folder(tmp_path_factory.mktemp('emotion_wheel')))


HIT_GOLD = {'s1': 'happy', 's2': 'angry', 's3': 'sad', 's4': 'neutral', 's5': 'angry', 's6': 'disgusted', 's7': 'sad'}
HIT_PRED = {'s1': '[joyful, sad]', 's2': '[glum]', 's3': '[hurt]', 's4': '[calm]', 's6': '[disgust, happy]',
            's7': "[' Happy ', \"SAD\"]", 'extra': '[happy]'}          # s5: no prediction


def test_hit_rate(table):
    # Hits per wheel (samples whose gold has no cluster in the wheel are not scored there):
    #   wheel1 s1 1, s2 1 (glum -> angry), s3 0 (hurt -> angry), s4 1, s5 0, s7 1   = 4/6   (s6 skipped)
    #   wheel2 s1 1, s2 1, s3 0 (hurt: none), s5 0, s7 1                            = 3/5   (s4, s6 skipped)
    #   wheel3 s1 1, s2 1 (mad), s3 1 (hurt -> sad), s5 0, s6 1, s7 1               = 5/6   (s4 skipped)
    #   wheel4 s1 1, s3 0, s7 1                                                     = 2/3   (angry has no cluster)
    #   wheel5 s1 1, s2 1, s3 1, s5 0, s7 1                                         = 4/5
    out = hit_rate(HIT_GOLD, HIT_PRED, table)
    assert out['hit_rate'] == pytest.approx((4 / 6 + 3 / 5 + 5 / 6 + 2 / 3 + 4 / 5) / 5)       # 107/150
    assert {w: s['n'] for w, s in out['wheels'].items()} == {'wheel1': 6, 'wheel2': 5, 'wheel3': 6, 'wheel4': 3,
                                                             'wheel5': 5}
    assert out['wheels']['wheel4']['hit_rate'] == pytest.approx(2 / 3)
    assert out['n'] == 7 and out['missing_predictions'] == 1 and out['missing_names'] == ['s5']
    assert out['ignored_predictions'] == ['extra']


def test_hit_rate_counts_the_shared_clusters():
    # The official hit is |clusters(pred) & clusters(gold)|, not a yes/no: a two-cluster gold hit twice counts 2.
    table = Wheel({'a': ('a',), 'b': ('b',)}, {'a': ('a',), 'b': ('b',)},
                  {'w': {'level1': {'a': 'A', 'b': 'B'}, 'level2': {}}}, 'inline')
    assert hit_rate({'x': 'a, b'}, {'x': '[a, b]'}, table)['hit_rate'] == 2


def test_a_missing_prediction_is_a_miss_not_a_skip(table):
    out = hit_rate({'s5': 'angry', 's2': 'angry'}, {'s2': '[glum]'}, table)
    assert out['wheels']['wheel1'] == {'hit_rate': 0.5, 'n': 2} and out['missing_names'] == ['s5']


def test_a_wheel_with_no_scored_sample_gives_none(table):
    out = hit_rate({'s4': 'neutral'}, {'s4': '[calm]'}, table)        # neutral has a cluster only in wheel1
    assert out['wheels']['wheel1'] == {'hit_rate': 1.0, 'n': 1} and out['wheels']['wheel2']['hit_rate'] is None
    assert out['hit_rate'] is None                                   # officially NaN


OV_GOLD = {'o1': '[happy, sad]', 'o2': '', 'o3': '[angry]', 'o4': "['disgusted', 'Happy']", 'o5': '[lonely]'}
OV_PRED = {'o1': '[joyful, revolted]', 'o2': '[calm]', 'o3': '[irate, furious, happy]', 'o5': '[sad]'}


def test_wheel_fscore(table):
    # (precision, recall) per scored sample; o4 has no prediction (0, 0); o5's 'lonely' reaches no cluster:
    #   wheel1 o1 (1, 1/2) [revolted dropped], o2 (1, 1) [empty gold -> neutral], o3 (1/2, 1), o4 (0, 0)
    #          P = R = 5/8, F = 5/8
    #   wheel2 o1 (1, 1/2), o3 (1/2, 1), o4 (0, 0)                 P = R = 1/2
    #   wheel3 o1 (1, 1/2), o3 (1/2, 1), o4 (0, 0)                 P = R = 1/2
    #   wheel4 o1 (1, 1/2), o4 (0, 0)                              P = 1/2, R = 1/4, F = 1/3
    #   wheel5 o1 (1, 1/2), o3 (1/2, 1), o4 (0, 0)                 P = R = 1/2
    out = wheel_fscore(OV_GOLD, OV_PRED, table)
    assert out['fs'] == pytest.approx((5 / 8 + 1 / 2 + 1 / 2 + 1 / 3 + 1 / 2) / 5)          # 59/120
    assert out['precision'] == pytest.approx(21 / 40) and out['recall'] == pytest.approx(19 / 40)
    assert out['wheels']['wheel4'] == pytest.approx({'fs': 1 / 3, 'precision': 1 / 2, 'recall': 1 / 4, 'n': 2})
    assert out['wheels']['wheel1']['n'] == 4 and out['missing_predictions'] == 1


def test_f_is_zero_when_nothing_hits(table):
    out = wheel_fscore({'o1': '[happy]'}, {'o1': '[sad]'}, table)
    assert out['wheels']['wheel1'] == {'fs': 0.0, 'precision': 0.0, 'recall': 0.0, 'n': 1}


WAF_GOLD = {'a': 1.2, 'b': -0.4, 'c': 0.0, 'd': 2.0, 'e': -1.0, 'f': -0.6, 'g': -2.0, 'h': 0.3, 'i': -0.2}
WAF_PRED = {'a': 'positive', 'b': 'negative', 'c': 'positive', 'd': 'Positive', 'e': 'mixed', 'g': 'neutral',
            'h': 'positive', 'i': 'positive'}                        # f: no prediction


def test_waf(table):
    # c (val 0) is dropped; d 'Positive' and e 'mixed' are not the exact strings, so neutral; f is missing,
    # so it takes the wrong side (positive, as its gold is negative).
    #   true     a+ b- d+ e- f- g- h+ i-      (3 positive, 5 negative)
    #   pred     a+ b- d- e- f+ g- h+ i+      (4 positive, 4 negative)
    #   positive F1 = 2*2/(3+4) = 4/7, negative F1 = 2*3/(5+4) = 2/3, weighted (3*4/7 + 5*2/3)/8 = 53/84
    out = waf(WAF_GOLD, WAF_PRED)
    assert out['waf'] == pytest.approx(53 / 84) and out['accuracy'] == pytest.approx(5 / 8)
    assert out['n'] == 9 and out['n_scored'] == 8 and out['dropped_zero'] == 1
    assert out['missing_predictions'] == 1 and out['unknown_sentiments'] == 2
    assert out['unknown_examples'] == {'d': 'Positive', 'e': 'mixed'}


def test_waf_needs_a_nonzero_gold():
    with pytest.raises(ValueError, match='WAF drops val == 0'):
        waf({'a': 0.0}, {'a': 'positive'})


@pytest.mark.parametrize('y_true, y_pred, expected', [
    ([1, 1, 0, 0], [1, 0, 0, 0], (2 * (2 / 3) + 2 * 0.8) / 4),        # F1(1) = 2/3, F1(0) = 4/5
    ([1, 1, 1], [1, 1, 1], 1.0),                                     # one class only
    ([1, 1, 1], [0, 0, 0], 0.0),                                     # the predicted class has no support
])
def test_weighted_f1_is_sklearns(y_true, y_pred, expected):
    assert weighted_f1(np.array(y_true, bool), np.array(y_pred, bool)) == pytest.approx(expected)
