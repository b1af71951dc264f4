"""Stage-3 rewards on hand-worked answers, garbage included (which scores 0 and never raises)."""
import math

import pytest

from microemo_jax.metrics import load_wheel
from microemo_jax.training import rewards
from microemo_jax.training.rewards import Completion, RewardContext, format_reward, length_reward, ov_reward, score
from tests.support.wheel import write_wheel_json

EXPLANATION = ("In the video, she smiles broadly. In the audio, her tone rises. "
               "Therefore, face and voice show that she is happy.")
GARBAGE = ['', '\ufffdcng<o\ufffd', '.....', 'happy happy happy' * 50, 'Therefore, she is.', '<s> </s> [INST]',
           "The character's emotional state is .", "\x00\x01\x02"]


def completion(text, gold=('happy', 'excited'), question='description', tokens=20, ended=True, name='v1'):
    return Completion(name=name, text=text, gold=tuple(gold), question=question, tokens=tokens, ended=ended)


CTX = RewardContext(synonyms=[['happy', 'glad'], ['excited', 'thrilled']], max_new_tokens=40, length_target=20)


def test_ov_reward_is_the_samples_mer2024_ov_score():
    # predicted {happy}, gold {happy, excited}: accuracy 1/1, recall 1/2 -> 0.75
    assert ov_reward(completion(EXPLANATION), CTX) == pytest.approx(0.75)
    # the synonym groups apply: 'glad' and 'thrilled' are the gold's heads
    assert ov_reward(completion("The character's emotional state is glad, thrilled."), CTX) == pytest.approx(1.0)
    # a wrong emotion plus a right one: accuracy 1/2, recall 1/2
    assert ov_reward(completion("Therefore, she is sad and excited."), CTX) == pytest.approx(0.5)
    assert ov_reward(completion(EXPLANATION, gold=()), CTX) == 0.0


def test_format_reward_asks_for_clues_then_a_conclusion():
    assert format_reward(completion(EXPLANATION), CTX) == 1.0
    assert format_reward(completion(EXPLANATION, ended=False), CTX) == 0.0      # cut off
    assert format_reward(completion("Therefore, she is happy."), CTX) == 0.0    # no clue sentence before it
    assert format_reward(completion("happy, excited"), CTX) == 0.0              # a bare label list
    assert format_reward(completion("She smiles. She is happy."), CTX) == 0.0   # no concluding sentence
    assert format_reward(completion("She smiles. Therefore, she is at home."), CTX) == 0.0  # concludes no emotion
    ov = "The character's emotional state is happy, excited."
    assert format_reward(completion(ov, question='ov'), CTX) == 1.0
    assert format_reward(completion(EXPLANATION, question='ov'), CTX) == 0.0
    assert format_reward(completion(ov + ' She smiles.', question='ov'), CTX) == 0.0


def test_length_reward():
    assert length_reward(completion(EXPLANATION, tokens=20), CTX) == 0.0
    assert length_reward(completion(EXPLANATION, tokens=30), CTX) == pytest.approx(-0.5)   # halfway from 20 to 40
    assert length_reward(completion(EXPLANATION, tokens=40, ended=False), CTX) == -1.0


def test_wheel_reward(tmp_path):
    ctx = RewardContext(wheel=load_wheel(write_wheel_json(tmp_path / 'wheel.json')))
    c = completion("She smiles. Therefore, she is happy.", gold=('happy',))
    assert rewards.wheel_reward(c, ctx) == pytest.approx(1.0)
    assert rewards.wheel_reward(completion("She frowns. Therefore, she is angry.", gold=('happy',)), ctx) == 0.0
    # 'sad' for 'angry': the same level-1 cluster in both wheels (negative, unpleasant), not the same level 2
    assert rewards.wheel_reward(completion("Therefore, she is sad.", gold=('angry',)), ctx) == pytest.approx(0.5)


@pytest.mark.parametrize('text', GARBAGE)
def test_garbage_scores_zero_and_never_raises(text):
    for question in ('description', 'ov'):
        c = completion(text, question=question, ended=bool(text))
        totals, parts, errors = score([c], ('ov', 'format'), {'ov': 1.0, 'format': 0.2}, CTX)
        assert errors == [] and parts['format'] == [0.0]
        assert parts['ov'][0] <= 0.75 and totals[0] == pytest.approx(parts['ov'][0])
    assert ov_reward(completion(text, gold=('sad',)), CTX) == 0.0


def test_score_weighs_components_and_a_failing_reward_scores_zero():
    calls = []

    @rewards.register('test_raises')
    def raises(c, ctx):
        calls.append(c.name)
        raise RuntimeError('boom')

    @rewards.register('test_nan')
    def nan(c, ctx):
        return float('nan')

    try:
        c = completion(EXPLANATION)
        totals, parts, errors = score([c], ('ov', 'format'), {'ov': 1.0, 'format': 0.2}, CTX)
        assert totals == [pytest.approx(0.75 + 0.2)] and parts == {'ov': [0.75], 'format': [1.0]}
        totals, parts, errors = score([c], ('ov', 'test_raises'), {'test_raises': 5.0}, CTX)
        assert totals == [pytest.approx(0.75)] and parts['test_raises'] == [0.0] and calls == ['v1']
        assert len(errors) == 1 and "reward 'test_raises' on 'v1': RuntimeError: boom" in errors[0]
        totals, _, _ = score([c], ('ov', 'test_nan'), {}, CTX)
        assert math.isnan(totals[0])      # passed on: the loop drops the group and counts it
        with pytest.raises(ValueError, match=r"unknown rewards \['nope'\]"):
            score([c], ('ov', 'nope'), {}, CTX)
        with pytest.raises(ValueError, match='already registered'):
            rewards.register('ov')(raises)
    finally:
        rewards.REWARDS.pop('test_raises', None)
        rewards.REWARDS.pop('test_nan', None)
