"""Stage 2 against stage 3: per-clip scores, the paired bootstrap interval and the before/after examples, by hand."""
import numpy as np
import pytest

from microemo_jax.runs.compare_stages import clip_scores, examples, markdown, paired_interval

BEFORE = [{'name': 'a', 'gold': ['happy'], 'predicted': ['sad'], 'explanation': 'She frowns. Therefore, she is sad.'},
          {'name': 'b', 'gold': ['sad', 'angry'], 'predicted': ['sad'], 'explanation': 'Therefore, she is sad.'},
          {'name': 'c', 'gold': ['angry'], 'predicted': ['angry'], 'explanation': 'Therefore, she is angry.'},
          {'name': 'd', 'gold': None, 'predicted': ['angry'], 'explanation': 'no gold: not scored'}]
AFTER = [{'name': 'a', 'gold': ['happy'], 'predicted': ['happy'], 'explanation': 'She smiles. Therefore, she is happy.'},
         {'name': 'b', 'gold': ['sad', 'angry'], 'predicted': ['sad', 'angry'], 'explanation': 'Therefore, sad, angry.'},
         {'name': 'c', 'gold': ['angry'], 'predicted': ['sad'], 'explanation': 'Therefore, she is sad.'},
         {'name': 'd', 'gold': None, 'predicted': ['happy'], 'explanation': '-'}]


def test_clip_scores_and_the_paired_interval():
    before, after = clip_scores(BEFORE), clip_scores(AFTER)
    # b: predicted {sad} of gold {sad, angry}: accuracy 1, recall 0.5 -> 0.75
    assert before == {'a': 0.0, 'b': 0.75, 'c': 1.0} and after == {'a': 1.0, 'b': 1.0, 'c': 0.0}
    mean, (lo, hi), n = paired_interval(before, after, resamples=2000)
    assert n == 3 and mean == pytest.approx((1.0 + 0.25 - 1.0) / 3)
    assert -1.0 <= lo < mean < hi <= 1.0
    # the bootstrap of identical scores has no width; a uniform gain is that gain exactly
    assert paired_interval(before, before)[1] == (0.0, 0.0)
    assert paired_interval(before, {k: v + 0.1 for k, v in before.items()})[1] == pytest.approx((0.1, 0.1))
    with pytest.raises(ValueError, match='share no clip'):
        paired_interval({'x': 1.0}, {'y': 1.0})


def test_examples_show_the_largest_gains_then_a_loss_and_the_table_says_it():
    scores = (clip_scores(BEFORE), clip_scores(AFTER))
    ex = examples(BEFORE, AFTER, scores, count=1)
    assert [e['name'] for e in ex] == ['a', 'c']                 # the largest gain, then the largest loss
    assert ex[0]['before']['labels'] == ['sad'] and ex[0]['after']['labels'] == ['happy'] and ex[1]['gain'] == -1.0
    result = {'split': 'validation', 'question': 'description', 'n': 3,
              'scores': {'stage2': {'accuracy_s': 0.5, 'recall_s': 0.4, 'avg': 0.45},
                         'stage3': {'accuracy_s': 0.6, 'recall_s': 0.5, 'avg': 0.55}},
              'baseline': None, 'examples': ex,
              'difference': {'avg': 0.1, 'interval95': (-0.2, 0.4), 'method': 'paired'}}
    text = markdown(result)
    assert '| stage 3 (GRPO) | 0.600 | 0.500 | 0.550 |' in text and '+0.100 (95% interval -0.200 to +0.400' in text
    assert 'She smiles. Therefore, she is happy.' in text
    assert np.isfinite(ex[0]['gain'])
