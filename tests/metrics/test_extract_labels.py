"""extract_labels: the answer sentence, else lexicon words and phrases, without negated ones."""
from __future__ import annotations

from collections import Counter

import pytest

from microemo_jax.metrics import extract_labels
from microemo_jax.metrics.lexicon import LEXICON, SYNONYM_GROUPS


@pytest.mark.parametrize('text, labels', [
    # The answer format: labels kept as written (open vocabulary), lower-cased, in order.
    ("The character's emotional state is happy, excited.", ['happy', 'excited']),
    ("The character's emotional state is Lovesick, wistful.", ['lovesick', 'wistful']),
    ("The character\u2019s emotional states are a bit nervous and worried.", ['nervous', 'worried']),
    ("He frowns. The emotional state of the character is angry; annoyed", ['angry', 'annoyed']),
    ("The character's emotional state is happy, not sad, happy.", ['happy']),
    ("The character's emotional state is unclear.", []),
    # The last answer sentence wins over earlier ones and over lexicon words in the text.
    ("She seems sad. The character's emotional state is calm. Later: "
     "The character's emotional state is relieved.", ['relieved']),
])
def test_answer_format(text, labels):
    assert extract_labels(text) == labels


@pytest.mark.parametrize('text, labels', [
    ('She smiles happily while he is clearly furious.', ['happy', 'furious']),
    ('He speaks angrily.', ['angry']),                                   # inflection -> label
    ('Her voice carries sadness and anxiety.', ['sad', 'anxious']),      # nouns -> label
    ('He is fed up and ill at ease.', ['frustrated', 'uneasy']),         # phrases, longest first
    ('Angry, angry and ANGRIER.', ['angry']),                            # once, in order of first appearance
    ('He is not happy.', []),
    ("He isn't angry, but he is sad.", ['sad']),                          # negation stops at a clause break
    ('She does not seem to be happy.', []),                             # cue four words back
    ('He is neither angry nor sad.', []),
    ('He shows no sign of fear, only relief.', ['relieved']),
    ('He is not only angry but also sad.', ['angry', 'sad']),            # "not only" affirms
    ("No, I'm happy.", ['happy']),                                       # "No," is not a negation of happy
    ('The man walks to the door and sits down.', []),                    # no emotion stated
    ('', []),
])
def test_lexicon_words(text, labels):
    assert extract_labels(text) == labels


def test_not_a_string_is_an_error():
    with pytest.raises(TypeError, match='needs a string'):
        extract_labels(None)


def test_lexicon_is_unambiguous():
    forms = Counter(f for label, fs in LEXICON.items() for f in (label, *fs))
    assert [f for f, n in forms.items() if n > 1] == []
    words = Counter(w for g in SYNONYM_GROUPS for w in g)
    assert [w for w, n in words.items() if n > 1] == []
    in_groups = set(words)
    assert [label for label in LEXICON if label not in in_groups] == []   # every extracted label is grouped


def test_an_explanation_is_judged_by_its_conclusion():
    text = ("In the video, her face is calm at first. In the audio, her tone is flat. In the text, a neutral "
            "statement. Therefore, despite her neutral face and words, her voice shows that she is angry.")
    assert extract_labels(text) == ['angry']
    # a conclusion that names no emotion does not hide the clues
    assert extract_labels("Her voice trembles with fear. Therefore, the answer is unclear.") == ['fearful']
    # the last conclusion wins
    assert extract_labels("Thus she seems happy. Later her voice breaks. In conclusion, she is sad.") == ['sad']


def test_despite_marks_the_overruled_state():
    assert extract_labels("Despite her calm face, her words show she is furious.") == ['furious']
