"""MER2024-OV set-level scores, hand-computed for every rule, with each synonym source."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from microemo_jax.metrics import load_synonyms, score_ov

GOLD = {'a': ['Happy ', 'excited'], 'b': ['sad'], 'c': ['angry', 'irritated'], 'd': ['calm']}
PRED = {'a': ['joyful'], 'b': [], 'c': ['ANGRY', 'annoyed', 'sad'], 'x': ['happy']}
GROUPS = [['happy', 'joyful'], ['irritated', 'annoyed']]
# a: G={happy, excited} P={happy}              -> accuracy 1,   recall 1/2
# b: P empty                                   -> 0, 0
# c: G={angry, irritated} P={angry, irritated, sad} -> 2/3, 1
# d: no prediction = empty prediction          -> 0, 0
ACC, REC = (1 + 0 + 2 / 3 + 0) / 4, (1 / 2 + 0 + 1 + 0) / 4


def check(out):
    assert out['accuracy_s'] == pytest.approx(ACC) and out['recall_s'] == pytest.approx(REC)
    assert out['avg'] == pytest.approx((ACC + REC) / 2) and out['n'] == 4
    assert out['ignored_predictions'] == ['x'] and out['missing_predictions'] == ['d']


def test_hand_computed_with_groups_in_code():
    check(score_ov(GOLD, PRED, GROUPS))


def test_empty_prediction_scores_zero_not_skipped():
    out = score_ov({'a': ['happy'], 'b': ['sad']}, {'a': ['happy'], 'b': []}, [])
    assert (out['accuracy_s'], out['recall_s'], out['n']) == (0.5, 0.5, 2)


def test_missing_prediction_counts_as_empty():
    out = score_ov({'a': ['happy'], 'b': ['sad']}, {'a': ['happy']}, [])
    assert (out['accuracy_s'], out['recall_s'], out['n'], out['missing_predictions']) == (0.5, 0.5, 2, ['b'])


def test_predicted_name_not_in_gold_is_ignored_and_reported():
    out = score_ov({'a': ['happy']}, {'a': ['happy'], 'ghost': ['sad', 'happy']}, [])
    assert (out['accuracy_s'], out['recall_s'], out['ignored_predictions']) == (1.0, 1.0, ['ghost'])


def test_labels_are_lowercased_stripped_and_sets():
    out = score_ov({'a': [' Happy', 'SAD ', 'sad']}, {'a': ['happy', 'happy ']}, [])
    assert (out['accuracy_s'], out['recall_s']) == (1.0, 0.5)   # G={happy, sad}, P={happy}


def test_words_map_to_the_first_word_of_their_group():
    groups = [['glad', 'happy', 'joyful']]
    assert score_ov({'a': ['joyful']}, {'a': ['happy']}, groups)['avg'] == 1.0
    assert score_ov({'a': ['joyful']}, {'a': ['happy']}, [])['avg'] == 0.0


def test_a_later_group_wins_as_in_mer():
    # 'glad' is in both groups: MER's table is filled group by group, so the last one decides.
    groups = [['happy', 'glad'], ['joyful', 'glad']]
    assert score_ov({'a': ['joyful']}, {'a': ['glad']}, groups)['avg'] == 1.0
    assert score_ov({'a': ['happy']}, {'a': ['glad']}, groups)['avg'] == 0.0


def test_gold_without_labels_is_skipped_and_reported():
    out = score_ov({'a': ['happy'], 'e': []}, {'a': ['happy'], 'e': ['sad']}, [])
    assert (out['n'], out['avg'], out['skipped_empty_gold']) == (1, 1.0, ['e'])
    with pytest.raises(ValueError, match='no gold sample has a label'):
        score_ov({'e': []}, {}, [])


def test_a_string_instead_of_a_list_is_an_error():
    with pytest.raises(TypeError, match=r"pred\['a'\].*parse it with parse_labels"):
        score_ov({'a': ['happy']}, {'a': "['happy']"}, [])


def test_bundled_table_is_the_default():
    out = score_ov({'a': ['happy'], 'b': ['angry']}, {'a': ['joyful'], 'b': ['furious']})
    assert out['avg'] == 1.0 and out['synonyms'].startswith('bundled table')
    assert score_ov({'a': ['happy']}, {'a': ['joyful']}, load_synonyms(None))['avg'] == 1.0


def test_json_list_of_groups(tmp_path):
    (tmp_path / 'groups.json').write_text(json.dumps(GROUPS))
    check(score_ov(GOLD, PRED, load_synonyms(tmp_path / 'groups.json')))


def test_json_per_sample_groups(tmp_path):
    per = {'a': [['happy', 'joyful']], 'b': [['sad']], 'c': [['irritated', 'annoyed']]}
    (tmp_path / 'per.json').write_text(json.dumps(per))
    out = score_ov(GOLD, PRED, load_synonyms(tmp_path / 'per.json'))
    check(out)
    assert out['synonyms_missing'] == ['d']
    # Groups are per sample: 'c''s grouping does not reach 'a'.
    assert score_ov({'a': ['irritated']}, {'a': ['annoyed']}, load_synonyms(tmp_path / 'per.json'))['avg'] == 0.0


def _cache(directory, entries):
    """MERTools' openset-synonym/NAME.npy: np.save of GPT's reply string, a 0-d unicode array."""
    directory.mkdir(parents=True)
    for name, text in entries.items():
        np.save(directory / f'{name}.npy', text)
    return directory


def test_mer2024_per_sample_cache(tmp_path):
    cache = _cache(tmp_path / 'ov_store' / 'openset-synonym', {
        'a': "[['happy', 'joyful'], ['excited']]", 'b': '[["sad"]]', 'c': "[['irritated', 'annoyed'], ['angry']]"})
    assert np.load(cache / 'a.npy').shape == () and np.load(cache / 'a.npy').dtype.kind == 'U'
    out = score_ov(GOLD, PRED, load_synonyms(cache))
    check(out)
    assert out['synonyms_missing'] == ['d'] and out['synonyms'].startswith('MER2024 per-sample cache')
    check(score_ov(GOLD, PRED, load_synonyms(tmp_path / 'ov_store')))   # the folder above works too


def test_cache_string_gpt_left_unclosed_is_read_mers_way_with_a_warning(tmp_path):
    cache = _cache(tmp_path / 'openset-synonym', {'a': "[['happy', 'joyful'], ['sad']"})
    syn = load_synonyms(cache)
    assert syn.table('a') == {'happy': 'happy', 'joyful': 'happy', 'sad': 'sad'}
    assert len(syn.warnings) == 1 and 'a.npy' in syn.warnings[0]


def test_cache_is_read_without_pickle(tmp_path):
    cache = tmp_path / 'openset-synonym'
    cache.mkdir()
    arr = np.empty((), dtype=object)
    arr[()] = [['happy', 'joyful']]
    np.save(cache / 'a.npy', arr, allow_pickle=True)
    with pytest.raises(ValueError, match=r"a\.npy: not a plain \.npy string array"):
        load_synonyms(cache)


def test_bad_synonym_sources_say_what_is_wrong(tmp_path):
    (tmp_path / 'bad.json').write_text('{"a": "happy"}')
    with pytest.raises(ValueError, match="sample 'a'.*expected a list of groups"):
        load_synonyms(tmp_path / 'bad.json')
    (tmp_path / 'num.json').write_text('3')
    with pytest.raises(ValueError, match='expected a JSON list of groups or an object'):
        load_synonyms(tmp_path / 'num.json')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no NAME.npy files'):
        load_synonyms(tmp_path / 'empty')
    with pytest.raises(FileNotFoundError):
        load_synonyms(tmp_path / 'nowhere.json')


def test_cache_groups_the_pieces_mer_split_a_quoted_label_into(tmp_path):
    # MER parsed "don't believe" as 'don' + 't believe' before GPT grouped the words, so its cache holds
    # the pieces; reading the label the same way (only where the cache knows a piece) matches MER.
    cache = _cache(tmp_path / 'openset-synonym', {'a': "[['doubt', 't believe'], ['don']]"})
    gold, pred = {'a': ['doubt']}, {'a': ["don't believe"]}
    out = score_ov(gold, pred, load_synonyms(cache))
    assert (out['accuracy_s'], out['recall_s']) == (0.5, 1.0)             # P = {don, doubt}, G = {doubt}
    assert score_ov(gold, pred, [['doubt', 't believe'], ['don']])['avg'] == 0.0   # other sources: as written


MER_OV_STORE = os.environ.get('MICROEMO_MER_OV_STORE')


@pytest.mark.skipif(not MER_OV_STORE, reason='set MICROEMO_MER_OV_STORE to MERTools/MER2024/ov_store '
                                             '(openset-synonym.zip unpacked) to compare with the official numbers')
def test_official_mer2024_numbers():
    """MERTools' main-ov.py docstring: accuracy 0.581777108433735, recall 0.4977911646586345 on its shipped files."""
    from microemo_jax.metrics import read_label_csv
    gold = read_label_csv(os.path.join(MER_OV_STORE, 'check-openset.csv'))
    pred = read_label_csv(os.path.join(MER_OV_STORE, 'predict-openset.csv'))
    out = score_ov(gold.labels, pred.labels, load_synonyms(os.path.join(MER_OV_STORE, 'openset-synonym')))
    assert gold.malformed == pred.malformed == [] and out['n'] == 332
    assert out['accuracy_s'] == pytest.approx(0.581777108433735, abs=1e-12)
    assert out['recall_s'] == pytest.approx(0.4977911646586345, abs=1e-12)
    assert out['avg'] == pytest.approx(0.5397841365461847, abs=1e-12)


def test_a_single_cache_file_is_pointed_at_its_directory(tmp_path):
    np.save(tmp_path / 'a.npy', "[['happy']]")
    with pytest.raises(ValueError, match='pass the directory holding the NAME.npy files'):
        load_synonyms(tmp_path / 'a.npy')
