"""python -m microemo_jax.metrics: one JSON object, bad rows reported, unusable files exit 2 with a message."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from microemo_jax.metrics.__main__ import main
from tests.support.wheel import write_wheel_npz


@pytest.fixture
def files(tmp_path):
    gold = tmp_path / 'gold.csv'
    gold.write_text('name,openset\n'
                    'a,"[\'happy\', \'sad\']"\n'
                    'b,[worried]\n'
                    'c,happy\n'                                  # line 4: malformed
                    's4,"[\'angry\']"\n')
    pred = tmp_path / 'pred.csv'
    pred.write_text('name,openset\n'
                    'a,"[\'joyful\']"\n'
                    'b,"[\'angry\', \'calm\']"\n'
                    'zzz,[sad]\n'
                    'bad,[sad\n')                                # line 5: malformed
    return gold, pred


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if rc == 0 else None), out.err


def test_ov_scores_and_reports(files, capsys):
    gold, pred = files
    rc, out, err = run(capsys, '--gold', gold, '--pred', pred)
    # bundled table: joyful -> happy.  a: 1, 1/2;  b: 0, 0;  s4 (no prediction): 0, 0.
    assert rc == 0
    assert out['accuracy_s'] == pytest.approx(1 / 3) and out['recall_s'] == pytest.approx(1 / 6)
    assert out['avg'] == pytest.approx(1 / 4) and out['n'] == 3
    assert out['ignored_predictions'] == ['zzz'] and out['missing_predictions'] == ['s4']
    where = [(os.path.basename(m['file']), m['line']) for m in out['malformed_rows']]
    assert where == [('gold.csv', 4), ('pred.csv', 5)]
    assert 'gold.csv:4' in err and 'pred.csv:5' in err and 'zzz' in err
    assert 'ew_mean' not in out and set(out['about']) == {'accuracy_s', 'recall_s', 'avg', 'n'}


def test_wheel_scores(files, capsys, tmp_path):
    gold, pred = files
    rc, out, _ = run(capsys, '--gold', gold, '--pred', pred, '--wheel', write_wheel_npz(tmp_path / 'w.npz'))
    # The wheel test's samples s1, s2, s4 (s3 is malformed here): level1 P = 2/3, R = 1/2; level2 P = 1/3, R = 1/6.
    assert rc == 0
    assert out['ew_level1_f'] == pytest.approx(4 / 7) and out['ew_level2_f'] == pytest.approx(2 / 9)
    assert out['ew_mean'] == pytest.approx((4 / 7 + 2 / 9) / 2)
    assert sorted(out['ew_wheels']) == ['wheel1', 'wheel2']


def test_synonyms_file(files, capsys, tmp_path):
    gold, pred = files
    (tmp_path / 'groups.json').write_text('[["worried", "angry"]]')
    rc, out, _ = run(capsys, '--gold', gold, '--pred', pred, '--synonyms', tmp_path / 'groups.json')
    # no joyful -> happy now; worried ~ angry.  a: 0, 0;  b: 1/2, 1;  s4: 0, 0.
    assert rc == 0 and out['accuracy_s'] == pytest.approx(1 / 6) and out['recall_s'] == pytest.approx(1 / 3)
    assert out['synonyms'].startswith('JSON groups')


def test_names_without_per_sample_groups_are_reported(files, capsys, tmp_path):
    gold, pred = files
    (tmp_path / 'per.json').write_text('{"a": [["happy", "joyful"]]}')
    rc, out, err = run(capsys, '--gold', gold, '--pred', pred, '--synonyms', tmp_path / 'per.json')
    assert rc == 0 and out['synonyms_missing'] == ['b', 's4'] and '2 gold names have no synonym groups' in err


@pytest.mark.parametrize('make, message', [
    (lambda t: ['--gold', t / 'nowhere.csv'], 'nowhere.csv: no such file'),
    (lambda t: ['--gold', _write(t / 'g.csv', 'names,emotions\n')], 'no column name, openset'),
    (lambda t: ['--synonyms', _write(t / 's.json', '{oops')], 's.json: not valid JSON'),
    (lambda t: ['--wheel', _write(t / 'w.npz', 'zip?')], 'w.npz: not an .npz'),
])
def test_unusable_files_exit_2_with_a_message(files, capsys, tmp_path, make, message):
    gold, pred = files
    argv = dict(zip(*[iter(['--gold', gold, '--pred', pred])] * 2))
    extra = make(tmp_path)
    argv.update(dict(zip(extra[::2], extra[1::2])))
    rc, _, err = run(capsys, *[x for kv in argv.items() for x in kv])
    assert rc == 2 and message in err and 'Traceback' not in err


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.integration
def test_module_entry_point(files):
    gold, pred = files
    proc = subprocess.run([sys.executable, '-m', 'microemo_jax.metrics', '--gold', gold, '--pred', pred],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)['avg'] == pytest.approx(1 / 4)
