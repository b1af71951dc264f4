"""AffectGPT's label .npz files (pickled dicts, read with the restricted unpickler) and its prediction caches."""
from __future__ import annotations

import collections
import io
import pickle
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy_format

from microemo_jax.metrics.official_files import load_label_npz, load_prediction_cache, sentiment_cache_beside
from microemo_jax.metrics.safe_npz import UnsafePickleError
from tests.support.wheel import object_array


def write_corpus(path, **corpora) -> str:
    np.savez(path, **{k: object_array(v) for k, v in corpora.items()})
    return str(path)


def test_meld_indices_become_the_official_class_words(tmp_path):
    path = write_corpus(tmp_path / 'label.npz', test_corpus={
        'test_dia0_utt0': {'emo': np.int64(6), 'val': np.float64(0.0)}, 'test_dia0_utt1': {'emo': 0},
        'test_dia1_utt0': {'emo': 'joy'}}, train_corpus={'x': {'emo': 3}})
    assert load_label_npz(path, 'MELD') == {'test_dia0_utt0': 'surprise', 'test_dia0_utt1': 'anger',
                                            'test_dia1_utt0': 'joy'}


def test_iemocap_keeps_session_5_only(tmp_path):
    path = write_corpus(tmp_path / 'label_4way.npz', whole_corpus={
        'Ses01F_impro01_F000': {'emo': 0}, 'Ses05M_script01_M003': {'emo': np.int64(3)},
        'Ses05F_impro02_F001': {'emo': 1}, 'Ses04F_impro02_F001': {'emo': 2}})
    assert load_label_npz(path, 'IEMOCAPFour') == {'Ses05M_script01_M003': 'anger', 'Ses05F_impro02_F001': 'sad'}


def test_mer_words_and_sentiment_values(tmp_path):
    mer = write_corpus(tmp_path / 'label-6way.npz', test1_corpus={'sample_1': {'emo': 'worried', 'val': 0.5}},
                       test2_corpus={'sample_2': {'emo': 'sad'}})
    assert load_label_npz(mer, 'MER2023') == {'sample_1': 'worried'}
    mosi = write_corpus(tmp_path / 'mosi.npz', test_corpus={'v_1': {'val': np.float64(-1.4)}, 'v_2': {'val': 2}})
    assert load_label_npz(mosi, 'CMUMOSI') == {'v_1': -1.4, 'v_2': 2.0}


def _numpy1_npz(path, key, corpus) -> str:
    """An .npz as numpy 1.x wrote it: protocol-3 pickles that name numpy.core.multiarray."""
    buf, array = io.BytesIO(), object_array(corpus)
    npy_format.write_array_header_1_0(buf, npy_format.header_data_from_array_1_0(array))
    pickle.dump(array, buf, protocol=3)
    raw = buf.getvalue().replace(b'numpy._core.multiarray', b'numpy.core.multiarray')
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr(f'{key}.npy', raw)
    return str(path)


def test_numpy1_files_load(tmp_path):
    path = _numpy1_npz(tmp_path / 'old.npz', 'test_corpus', {'v': {'val': np.float64(0.25)}})
    assert b'numpy.core.multiarray\nscalar' in zipfile.ZipFile(path).read('test_corpus.npy')
    assert load_label_npz(path, 'SIMS') == {'v': 0.25}


def test_a_corpus_asking_for_other_classes_is_refused(tmp_path):
    path = write_corpus(tmp_path / 'evil.npz', test_corpus={'v': collections.OrderedDict(val=1.0)})
    with pytest.raises(UnsafePickleError, match='collections.OrderedDict'):
        load_label_npz(path, 'SIMS')


@pytest.mark.parametrize('dataset, corpus, message', [
    ('MELD', {'test_corpus': {'a': {'emo': 7}}}, r"emo 7 is not a word or an index 0..6"),
    ('MER2023', {'test1_corpus': {'a': {'emo': 2}}}, r"emo 2 is not a word"),
    ('SIMS', {'test_corpus': {'a': {'val': 'high'}}}, r"val 'high' is not a finite number"),
    ('SIMS', {'test_corpus': {'a': {'val': float('nan')}}}, r"val nan is not a finite number"),
    ('SIMS', {'test_corpus': {'a': {'emo': 'sad'}}}, r"expected a name -> \{'val': ...\} entry"),
    ('SIMS', {'train_corpus': {}}, r"no array 'test_corpus' \(found \['train_corpus'\]\)"),
    ('IEMOCAPFour', {'whole_corpus': {'clip_a': {'emo': 1}}}, r"not an IEMOCAP name"),
    ('OVMERDPlus', {'test_corpus': {}}, r"OVMERDPlus's gold is ovlabel.csv"),
])
def test_bad_label_files_say_what_is_wrong(tmp_path, dataset, corpus, message):
    with pytest.raises(ValueError, match=message):
        load_label_npz(write_corpus(tmp_path / 'label.npz', **corpus), dataset)


def test_prediction_caches(tmp_path):
    path = tmp_path / 'checkpoint_000030_loss_0.602-openset.npz'
    np.savez_compressed(path, filenames=['a', 'b'], fileitems=['[happy, excited]', '[]'])
    assert load_prediction_cache(path) == {'a': '[happy, excited]', 'b': '[]'}
    assert sentiment_cache_beside(path) == str(tmp_path / 'checkpoint_000030_loss_0.602-openset-sentiment.npz')
    np.savez(tmp_path / 'bad1.npz', filenames=['a'], items=['x'])
    with pytest.raises(ValueError, match=r'no array fileitems'):
        load_prediction_cache(tmp_path / 'bad1.npz')
    np.savez(tmp_path / 'bad2.npz', filenames=['a', 'b'], fileitems=['x'])
    with pytest.raises(ValueError, match=r'2 filenames but 1 fileitems'):
        load_prediction_cache(tmp_path / 'bad2.npz')
    np.savez(tmp_path / 'bad3.npz', filenames=['a', 'a'], fileitems=['x', 'y'])
    with pytest.raises(ValueError, match=r"name 'a' appears twice \(entries 0 and 1\)"):
        load_prediction_cache(tmp_path / 'bad3.npz')
    with pytest.raises(FileNotFoundError, match='no such file'):
        load_prediction_cache(tmp_path / 'absent.npz')
