"""The benchmark's protocol text, the lenient label split, the valence table and the extractor choice."""
from __future__ import annotations

import numpy as np
import pytest

from microemo_jax.metrics import extractors, protocol
from microemo_jax.metrics.extractors import LLM_UNREGISTERED, make_extractor
from microemo_jax.metrics.labels import split_list_string
from microemo_jax.metrics.lexicon import LEXICON
from microemo_jax.metrics.valence import polarity, sentiment_of


def test_the_question_and_prompts_are_the_official_text():
    assert protocol.BENCHMARK_QUESTION == "Please recognize all possible emotional states of the character."
    assert protocol.label_prompt('He shouts.').endswith(
        "Input: His emotional state is happy, sad, and angry; Output: [happy, sad, angry] Input: He shouts.; Output: ")
    assert protocol.LABEL_PROMPT.startswith("Please assume the role of an expert in the field of emotions. We provide "
                                            "clues that may be related to the emotions of the characters.")
    # the official source's indentation is inside the sentiment prompt: sentences joined by 13 spaces
    assert protocol.sentiment_prompt('[happy]') == (
        "Please act as an expert in the field of emotions.             We provide a few words to describe the "
        "emotions of a character.             Please choose the most likely sentiment from the given candidates: "
        "[positive, negative, neutral]             Please direct output answer without analyzing process.          "
        "   Input: [joyful]; Output: positive             Input: []; Output: neutral             Input: [happy]; "
        "Output: ")
    assert protocol.label_prompt('{x}').endswith('Input: {x}; Output: ')      # text with braces is safe


@pytest.mark.parametrize('raw, cleaned', [
    ('  Output: [happy, sad]\n', '[happy, sad]'),
    ('输出：[angry]', '[angry]'),
    ('[a,\n b]', '[a, b]'),
    ('Input: Output: positive', 'Output: positive'),   # each prefix once, in order: 'Output' before 'Input'
    ('Output:：x', 'x'),                                # then ':' and '：' once each
    ('output\n: neutral', 'neutral'),
])
def test_responses_are_tidied_as_officially(raw, cleaned):
    assert protocol.clean_response(raw) == cleaned


@pytest.mark.parametrize('cell, labels', [
    ('[happy, excited]', ['happy', 'excited']),
    ("['happy', \"sad\"]", ['happy', 'sad']),
    ('happy,, sad', ['happy', 'sad']),
    ('[happy excited]', ['happy excited']),
    (' [happy]', ['[happy']),                     # only the very first and last characters are brackets
    ('[]', []), ('', []), (None, []),
    (['Already', 'a list'], ['Already', 'a list']),
])
def test_the_lenient_split(cell, labels):
    assert split_list_string(cell) == labels


def test_every_lexicon_label_has_a_polarity():
    assert [label for label in LEXICON if polarity(label) is None] == []


@pytest.mark.parametrize('labels, sentiment', [
    (['happy', 'excited'], 'positive'),
    (['Anxiety', 'frustration'], 'negative'),       # lexicon forms, any case
    (['elated'], 'positive'),                       # through its synonym group
    (['slightly anxious'], 'negative'),             # by its last word
    (['happy', 'nervous'], 'neutral'),              # the signs cancel
    (['surprised'], 'neutral'),
    (['quizzical'], 'neutral'), ([], 'neutral'),   # unknown or nothing: neutral, like the official prompt's []
])
def test_sentiment_of(labels, sentiment):
    assert sentiment_of(labels) == sentiment


def test_extractors(tmp_path, monkeypatch):
    lexicon = make_extractor()
    assert lexicon.name == 'lexicon' and lexicon.labels('a', 'She stays calm despite being furious inside.') == \
        ['furious']
    assert lexicon.sentiment('a', ['furious']) == 'negative'
    openset = tmp_path / 'ck-openset.npz'
    np.savez(openset, filenames=['a'], fileitems=['[happy, excited]'])
    cache = make_extractor('cache', openset_npz=openset)
    assert cache.labels('a') == ['happy', 'excited'] and cache.labels('b') is None
    assert cache.sentiment_name == 'lexicon' and cache.sentiment('a', cache.labels('a')) == 'positive'
    np.savez(tmp_path / 'ck-openset-sentiment.npz', filenames=['a'], fileitems=['mixed'])
    cache = make_extractor('cache', openset_npz=openset)
    assert cache.sentiment_name == 'cache' and cache.sentiment('a') == 'mixed' and cache.sentiment('b') is None
    with pytest.raises(ValueError, match='needs the official'):
        make_extractor('cache')
    monkeypatch.setattr(extractors, '_FACTORIES', {})      # metrics alone (no JAX): llm: is offered from above
    with pytest.raises(ValueError) as e:
        make_extractor('llm:/models/qwen2.5-7b-instruct')
    assert str(e.value) == LLM_UNREGISTERED
    with pytest.raises(ValueError, match='needs the checkpoint folder'):
        make_extractor('llm:')
    made = []
    extractors.register_extractor('llm', lambda path, **options: made.append((path, options)) or 'built')
    assert make_extractor('llm:/ckpt/Qwen2.5-7B-Instruct', batch_size=4) == 'built'
    assert made == [('/ckpt/Qwen2.5-7B-Instruct', {'batch_size': 4})]
    texts = ['He is furious.', 'She is happy but hides it.']
    one_by_one = [(lexicon.labels(n, t), lexicon.sentiment(n, lexicon.labels(n, t))) for n, t in zip('ab', texts)]
    assert [(e.labels, e.sentiment) for e in lexicon.extract_batch(['a', 'b'], texts)] == one_by_one
    with pytest.raises(ValueError, match='unknown extractor'):
        make_extractor('gpt')
