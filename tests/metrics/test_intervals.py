"""Bootstrap intervals over clips: the per-clip parts give back the metric functions' own scores, and the
intervals are where a hand-made case puts them."""
import numpy as np
import pytest

from microemo_jax.metrics import load_wheel, score_ov, score_wheel
from microemo_jax.metrics.clip_scores import clip_parts, score_intervals, scores_from_counts
from microemo_jax.metrics.intervals import Bootstrap, ratio
from tests.support.wheel import write_wheel_json

GOLD = {'a': ['happy'], 'b': ['sad', 'angry'], 'c': ['worried'], 'd': ['calm'], 'e': ['joyful', 'happy'],
        'f': []}
PRED = {'a': ['happy', 'sad'], 'b': ['angry'], 'c': [], 'd': ['happy'], 'e': ['happiness'], 'x': ['sad']}


def test_parts_give_back_the_metric_functions_scores(tmp_path):
    wheel = load_wheel(write_wheel_json(tmp_path / 'w.json'))
    ov = score_ov(GOLD, PRED)
    parts = clip_parts(GOLD, PRED, None, wheel, skipped=ov['skipped_empty_gold'])
    whole = {k: float(v[0]) for k, v in scores_from_counts(parts, np.ones(len(GOLD))).items()}
    expected = {**{k: ov[k] for k in ('accuracy_s', 'recall_s', 'avg')},
                **{k: v for k, v in score_wheel(GOLD, PRED, wheel).items() if k in ('ew_level1_f', 'ew_level2_f',
                                                                                      'ew_mean')}}
    assert whole == pytest.approx(expected, abs=1e-12)
    # weights: clip 'a' twice and 'b' once is the score of a set holding a copy of 'a'
    two_a = {**GOLD, 'a2': GOLD['a']}
    pred2 = {**PRED, 'a2': PRED['a']}
    counts = np.array([[2, 1, 1, 1, 1, 1]])
    again = scores_from_counts(parts, counts)
    assert float(again['accuracy_s'][0]) == pytest.approx(score_ov(two_a, pred2)['accuracy_s'])
    assert float(again['ew_mean'][0]) == pytest.approx(score_wheel(two_a, pred2, wheel)['ew_mean'])


def test_hand_made_accuracies_and_their_interval():
    # 20 clips, accuracy 1 on 10 of them and 0 on the rest: mean 0.5, standard error about 0.11
    gold = {f'c{i:02d}': ['happy'] for i in range(20)}
    pred = {n: ['happy'] if i < 10 else ['sad'] for i, n in enumerate(gold)}
    parts = clip_parts(gold, pred)
    assert list(parts['ov']['accuracy']) == [1.0] * 10 + [0.0] * 10
    boot = Bootstrap(resamples=2000, seed=0)
    low, high = score_intervals(parts, boot)['accuracy_s']
    assert 0.25 <= low < 0.4 and 0.6 < high <= 0.75
    assert score_intervals(parts, boot) == score_intervals(parts, Bootstrap(resamples=2000, seed=0))  # fixed seed
    # every clip the same: no spread
    same = clip_parts({'a': ['happy'], 'b': ['happy']}, {'a': ['happy', 'sad'], 'b': ['sad', 'happy']})
    assert score_intervals(same, boot)['accuracy_s'] == [0.5, 0.5]


def test_counts_draw_n_clips_with_replacement_and_ratio_skips_empty_denominators():
    counts = Bootstrap(resamples=50, seed=3).counts(7)
    assert counts.shape == (50, 7) and (counts.sum(axis=1) == 7).all() and (counts == 0).any()
    assert Bootstrap(resamples=0).interval([]) is None
    r = ratio([1.0, 3.0], [1.0, 0.0], np.array([[1, 1], [0, 1]]))
    assert r[0] == 4.0 and np.isnan(r[1])
    with pytest.raises(ValueError, match='level'):
        Bootstrap(level=95)
