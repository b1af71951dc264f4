"""Temporal grounding: the moments free text states, durations and quoted speech left out, and the matching rule."""
import pytest

from microemo_jax.metrics.grounding import clip_grounding, match_times, median_time, stated_times


@pytest.mark.parametrize('text, seconds', [
    ("At about 1.7s, a brief micro-expression of anger flashes for 120 ms.", [1.7]),
    ("her face is calm at first; from 0.4s, her brows drop.", [0.4]),
    ("She frowns at 1.7 s and smiles around 2 seconds later.", [1.7, 2.0]),
    ("Between 1.2 and 1.5 seconds her lip corner rises.", [1.2]),
    ("from 1.2 to 1.5 s, then again 2.5-2.8s.", [1.2, 2.5]),
    ("from 1.2s to 1.5s", [1.2]),
    ("1.7s into the clip, disgust appears.", [1.7]),
    ("near the 2-second mark", [2.0]),
    ("At the 1.5 sec. mark and at 3 secs", [1.5, 3.0]),
    ("at 1700 ms the mask slips", [1.7]),
    ("around two seconds in, and again at three and a half seconds", [2.0, 3.5]),
    ("after half a second she looks away", [0.5]),
    ("at t = 1.7 she blinks; t=2.1s", [1.7, 2.1]),
    ("the frame at 0:01.5 shows it", [1.5]),
    ("at .8 s", [0.8]),
    ("AT ABOUT 2.0 SECONDS", [2.0]),
])
def test_moments_are_found_in_text_order(text, seconds):
    assert [t.seconds for t in stated_times(text)] == pytest.approx(seconds)


@pytest.mark.parametrize('text', [
    "a brief micro-expression flashes for 120 ms",
    "a 0.2 s flash of contempt",
    "a flash of 200 ms",
    "lasting about 0.3 seconds",
    "the expression lasts only 0.25 s",
    "a 120-ms-long twitch; a 3 s long pause",
    'the subtitle says "The train leaves in 2 seconds.", a neutral statement',
    "the subtitle says “I waited 10 seconds”",
    "music of the 90s and the 1990s",
    "The meeting starts at nine tomorrow; it is twenty minutes from here; at 9:30 am",
    "she is sad, upset and 3 sad faces so 2 so",
    "",
])
def test_durations_quotes_decades_and_other_numbers_are_not_moments(text):
    assert stated_times(text) == []


def test_a_range_keeps_its_end_and_where_it_was_found():
    t, = stated_times("It shows between 1.2 and 1.5 seconds.")
    assert (t.seconds, t.end, t.text) == (1.2, 1.5, 'between 1.2 and 1.5 seconds')
    assert "It shows between 1.2 and 1.5 seconds."[slice(*t.span)] == t.text
    assert stated_times("from 1000 to 1500 ms")[0].end == pytest.approx(1.5)


def test_matching_takes_the_closest_pair_first_and_uses_each_time_once():
    assert match_times([1.0, 3.0], [2.9]) == [(3.0, 2.9)]
    assert match_times([1.0, 3.0], [1.4, 2.0]) == [(1.0, 1.4), (3.0, 2.0)]
    assert match_times([2.0], [0.5, 1.8, 2.3]) == [(2.0, 1.8)]
    assert match_times([1.0], []) == [] and match_times([], [1.0]) == []


def test_clip_grounding_errors_are_per_matched_event():
    gold = "In the video, her face is calm. At about 1.1s, a brief micro-expression of anger flashes for 120 ms."
    out = clip_grounding(gold, "Around 1.4 seconds she frowns; at 3 s she looks away.")
    assert out['gold_times'] == [1.1] and out['stated_times'] == [1.4, 3.0]
    assert out['errors'] == [pytest.approx(0.3)]
    assert clip_grounding(gold, "She is angry.")['errors'] == []


def test_median_time_is_the_median_of_every_stated_gold_moment():
    texts = ["At about 1.7s, a flash.", "From 0.4s she frowns; at 2.5 s she looks away.", "She is calm.",
             "At 1.0 s she smiles."]
    assert median_time(texts) == pytest.approx(1.35)            # of 1.7, 0.4, 2.5 and 1.0
    assert median_time(texts[:1]) == pytest.approx(1.7)
    assert median_time(["She is calm.", ""]) is None
