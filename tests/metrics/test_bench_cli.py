"""python -m microemo_jax.metrics --dataset D: one JSON object; bad input -> one line naming the file, status 2."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from microemo_jax.metrics.__main__ import main
from tests.metrics.test_benchmark_scores import WAF_GOLD
from tests.metrics.wheel_folder import write_wheel_folder
from tests.support.wheel import object_array


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    return write_wheel_folder(tmp_path_factory.mktemp('emotion_wheel'))


def write(path, text, encoding='utf-8'):
    path.write_text(text, encoding=encoding)
    return str(path)


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if rc == 0 else out.out), out.err


HIT_GOLD_CSV = 'name,emo\ns1,happy\ns2,angry\ns3,sad\ns4,neutral\ns5,angry\ns6,disgusted\ns7,sad\n'
HIT_PRED_CSV = ('name,openset\ns1,"[joyful, sad]"\ns2,[glum]\ns3,[hurt]\ns4,[calm]\ns6,"[disgust, happy]"\n'
                's7,"[\' Happy \', ""SAD""]"\n')


def test_hit_rate(capsys, tmp_path, wheel):
    gold, pred = write(tmp_path / 'gold.csv', HIT_GOLD_CSV), write(tmp_path / 'pred.csv', HIT_PRED_CSV)
    rc, out, err = run(capsys, '--dataset', 'MELD', '--gold', gold, '--pred', pred, '--wheel', wheel)
    assert rc == 0
    assert list(out)[:3] == ['dataset', 'metric', 'hit_rate'] and out['metric'] == 'hit_rate'
    assert out['hit_rate'] == pytest.approx(107 / 150) and out['n'] == 7 and out['expected_n'] == 2610
    assert out['missing_predictions'] == 1 and out['missing_names'] == ['s5']
    assert out['wheels']['wheel4'] == pytest.approx({'hit_rate': 2 / 3, 'n': 3})
    assert out['extractor'] == {'labels': 'given'} and out['table']['kind'] == 'AffectGPT emotion_wheel folder'
    assert '1 gold samples have no prediction and score as misses (first: s5)' in err
    assert 'gold has 7 samples; the official MELD test set has 2610' in err


def test_meld_gold_from_the_official_label_npz(capsys, tmp_path, wheel):
    gold = tmp_path / 'label.npz'
    np.savez(gold, test_corpus=object_array({'s1': {'emo': 1}, 's2': {'emo': np.int64(0)}}))  # joy, anger
    pred = write(tmp_path / 'pred.csv', 'name,openset\ns1,[happy]\ns2,[sad]\n')
    rc, out, _ = run(capsys, '--dataset', 'MELD', '--gold', gold, '--pred', pred, '--wheel', wheel)
    # joy -> [happy, joyful] -> happy's cluster everywhere: a hit in all 5 wheels; anger vs sad: a miss where
    # anger has a cluster (wheels 1, 2, 3, 5). Per wheel (1 + 0)/2, except wheel4: 1/1.
    assert rc == 0 and out['hit_rate'] == pytest.approx((0.5 * 4 + 1) / 5)


def test_fs_with_empty_gold_as_neutral(capsys, tmp_path, wheel):
    gold = write(tmp_path / 'ovlabel.csv', 'name,openset\no1,"[happy, sad]"\no2,\no3,[angry]\n'
                                           'o4,"[\'disgusted\', \'Happy\']"\no5,[lonely]\n')
    pred = write(tmp_path / 'pred.csv', 'name,openset\no1,"[joyful, revolted]"\no2,[calm]\n'
                                        'o3,"[irate, furious, happy]"\no5,[sad]\n')
    rc, out, _ = run(capsys, '--dataset', 'OVMERDPlus', '--gold', gold, '--pred', pred, '--wheel', wheel)
    assert rc == 0 and out['fs'] == pytest.approx(59 / 120)
    assert out['precision'] == pytest.approx(21 / 40) and out['recall'] == pytest.approx(19 / 40)


def _waf_gold(tmp_path):
    return write(tmp_path / 'val.csv', 'name,val\n' + ''.join(f'{n},{v}\n' for n, v in WAF_GOLD.items()))


def test_waf_with_a_sentiment_column_used_verbatim(capsys, tmp_path):
    pred = write(tmp_path / 'pred.csv', 'name,openset,sentiment\na,[],positive\nb,[],negative\nc,[],positive\n'
                                        'd,[happy],Positive\ne,[],mixed\ng,[],neutral\nh,[],positive\ni,[],positive\n')
    rc, out, err = run(capsys, '--dataset', 'SIMS', '--gold', _waf_gold(tmp_path), '--pred', pred)
    assert rc == 0 and out['waf'] == pytest.approx(53 / 84) and out['accuracy'] == pytest.approx(5 / 8)
    assert out['extractor'] == {'labels': 'given', 'sentiment': 'given'} and out['table'] is None
    assert out['dropped_zero'] == 1 and out['unknown_sentiments'] == 2 and 'count as neutral' in err


def test_waf_sentiment_from_the_valence_lexicon(capsys, tmp_path):
    gold = write(tmp_path / 'val.csv', 'name,val\na,1.0\nb,-1.0\nc,0.5\nd,-0.5\n')
    pred = write(tmp_path / 'pred.csv', 'name,openset\na,"[happy, excited]"\nb,"[sad, angry]"\n'
                                        'c,"[nervous, happy]"\nd,[furious]\n')
    # positive, negative, neutral (one each way: not positive), negative. true + - + -, pred + - - -:
    # F1(+) = 2/3, F1(-) = 4/5, weighted 11/15.
    rc, out, _ = run(capsys, '--dataset', 'CMUMOSI', '--gold', gold, '--pred', pred)
    assert rc == 0 and out['waf'] == pytest.approx(11 / 15)
    assert out['extractor'] == {'labels': 'given', 'sentiment': 'lexicon'}


def test_waf_from_the_official_caches(capsys, tmp_path):
    openset = tmp_path / 'checkpoint_000030_loss_0.602-openset.npz'
    np.savez_compressed(openset, filenames=['a', 'b', 'c', 'd'], fileitems=['[happy]', '[sad]', '[calm]', '[angry]'])
    gold = write(tmp_path / 'val.csv', 'name,val\na,1.0\nb,-1.0\nc,0.5\nd,-0.5\n')
    rc, out, _ = run(capsys, '--dataset', 'SIMSv2', '--gold', gold, '--pred', openset)
    assert rc == 0 and out['waf'] == 1.0 and out['extractor'] == {'labels': 'cache', 'sentiment': 'lexicon'}
    np.savez_compressed(tmp_path / 'checkpoint_000030_loss_0.602-openset-sentiment.npz',
                        filenames=['a', 'b', 'c', 'd'], fileitems=['positive', 'negative', 'negative', 'negative'])
    rc, out, _ = run(capsys, '--dataset', 'SIMSv2', '--gold', gold, '--pred', openset)
    assert rc == 0 and out['waf'] == pytest.approx(11 / 15)       # c now wrong, as in the lexicon case above
    assert out['extractor'] == {'labels': 'cache', 'sentiment': 'cache'}


@pytest.mark.parametrize('gold_text, pred_text, extra, message', [
    (HIT_GOLD_CSV, 'name,openset\ns1,[happy],x\n', (), r'pred.csv:2: 3 fields, expected 2'),
    (HIT_GOLD_CSV, 'name,openset,Name\ns1,[happy],s1\n', (), r"pred.csv: column 'name' appears 2 times"),
    (HIT_GOLD_CSV, 'name,labels\ns1,[happy]\n', (), r'pred.csv: no column openset'),
    (HIT_GOLD_CSV + 's1,sad\n', HIT_PRED_CSV, (), r"gold.csv:9: name 's1' repeats line 2"),
    ('name,emo\ns1,\n', HIT_PRED_CSV, (), r'gold.csv: s1: empty emo'),
    (HIT_GOLD_CSV, HIT_PRED_CSV, ('--synonyms', 'x.json'), r'--synonyms belongs to the MER2024-OV score'),
])
def test_bad_input_is_one_line_naming_the_file(capsys, tmp_path, wheel, gold_text, pred_text, extra, message):
    gold, pred = write(tmp_path / 'gold.csv', gold_text), write(tmp_path / 'pred.csv', pred_text)
    rc, out, err = run(capsys, '--dataset', 'MER2023', '--gold', gold, '--pred', pred, '--wheel', wheel, *extra)
    assert rc == 2 and out == '' and err.startswith('error: ') and err.count('\n') == 1
    assert re.search(message, err), err


def test_latin1_missing_files_and_missing_wheel(capsys, tmp_path, wheel):
    gold = write(tmp_path / 'gold.csv', 'name,emo\nsé,happy\n', encoding='latin-1')
    pred = write(tmp_path / 'pred.csv', HIT_PRED_CSV)
    rc, _, err = run(capsys, '--dataset', 'MER2024', '--gold', gold, '--pred', pred, '--wheel', wheel)
    assert rc == 2 and f'{gold}: not UTF-8 text' in err and 'save it as UTF-8' in err
    rc, _, err = run(capsys, '--dataset', 'MER2024', '--gold', tmp_path / 'nope.csv', '--pred', pred, '--wheel', wheel)
    assert rc == 2 and 'nope.csv: no such file' in err
    gold = write(tmp_path / 'gold2.csv', HIT_GOLD_CSV)
    rc, _, err = run(capsys, '--dataset', 'MER2024', '--gold', gold, '--pred', pred)
    assert rc == 2 and 'give --wheel' in err
    rc, _, err = run(capsys, '--dataset', 'CMUMOSI', '--gold', write(tmp_path / 'v.csv', 'name,val\na,high\n'),
                     '--pred', pred)
    assert rc == 2 and "v.csv: a: val 'high' is not a finite number" in err
    rc, _, err = run(capsys, '--gold', gold, '--pred', pred, '--sentiment', 'x.npz')
    assert rc == 2 and '--sentiment goes with --dataset' in err


def test_without_dataset_the_output_keys_are_unchanged(capsys, tmp_path):
    gold = write(tmp_path / 'gold.csv', 'name,openset\na,[happy]\n')
    rc, out, _ = run(capsys, '--gold', gold, '--pred', gold)
    assert rc == 0 and list(out) == ['accuracy_s', 'recall_s', 'avg', 'n', 'synonyms', 'ignored_predictions',
                                     'missing_predictions', 'skipped_empty_gold', 'synonyms_missing',
                                     'malformed_rows', 'warnings', 'about']


@pytest.mark.integration
def test_a_subprocess_prints_exactly_one_json_object(tmp_path, wheel):
    gold, pred = write(tmp_path / 'gold.csv', HIT_GOLD_CSV), write(tmp_path / 'pred.csv', HIT_PRED_CSV)
    cmd = [sys.executable, '-m', 'microemo_jax.metrics', '--dataset', 'IEMOCAPFour', '--gold', gold, '--pred', pred,
           '--wheel', wheel]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and json.loads(p.stdout)['hit_rate'] == pytest.approx(107 / 150)
    bad = subprocess.run(cmd[:-2], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == '' and 'Traceback' not in bad.stderr
