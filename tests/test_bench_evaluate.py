"""MER-UniBench end to end on the tiny model: two synthetic benchmark datasets (MELD's and CH-SIMS's published
layouts, written here) prepared with ``prepare --source``, then ``evaluate --bench`` into one table; resume,
``--select best``, the cache and LLM extractors and the command line's errors."""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import types

import numpy as np
import pytest

from microemo_jax.data.records import tfds_builder
from microemo_jax.data.records.build import prepare
from microemo_jax.evaluate import main as evaluate_main
from microemo_jax.inference import bench_table, benchmark
from microemo_jax.inference.bench_data import check_compatible
from microemo_jax.inference.llm_extractor import LLMExtractor
from microemo_jax.metrics.bench_cli import run_benchmark as score_dataset
from microemo_jax.metrics.protocol import BENCHMARK_QUESTION
from tests.metrics.wheel_folder import write_wheel_folder
from tests.support.inference import corpus, params_dir  # noqa: F401  (session fixtures)
from tests.support.media import moving_face_frames, write_h264_mp4
from tests.support.tiny_instruct import scripted_folder

pytestmark = pytest.mark.slow    # a prepare of two small datasets and a generation pass: ~40 s on 2 cores

MELD_HEADER = ['Sr No.', 'Utterance', 'Speaker', 'Emotion', 'Sentiment', 'Dialogue_ID', 'Utterance_ID', 'Season',
               'Episode', 'StartTime', 'EndTime']


def _csv(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8', newline='') as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _clip(path, seed):
    frames, _ = moving_face_frames(10, height=64, width=64, face_size=40, seed=seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_h264_mp4(path, frames, audio=dict(sample_rate=16000, channels=1))


@pytest.fixture(scope='module')
def bench_root(corpus, params_dir, tmp_path_factory):  # noqa: F811
    """ROOT/MELD (3 test rows, one without its clip) and ROOT/SIMS (2 test rows, 1 valid row), prepared for
    the tiny model with its own tokenizers."""
    cfg, _ = corpus
    base = tmp_path_factory.mktemp('bench')
    meld, sims = base / 'raw' / 'MELD.Raw', base / 'raw' / 'CH-SIMS'
    _csv(meld / 'test_sent_emo.csv', MELD_HEADER, [
        ['1', 'I am so happy!', 'Joey', 'joy', 'positive', '0', '0', '1', '1', '0', '0'],
        ['2', 'Get out.', 'Ross', 'anger', 'negative', '0', '1', '1', '1', '0', '0'],
        ['3', 'Where is it?', 'Rachel', 'neutral', 'neutral', '1', '0', '1', '1', '0', '0']])
    _clip(meld / 'output_repeated_splits_test' / 'dia0_utt0.mp4', 1)
    _clip(meld / 'output_repeated_splits_test' / 'dia0_utt1.mp4', 2)
    _csv(sims / 'label.csv', ['video_id', 'clip_id', 'text', 'label', 'label_T', 'label_A', 'label_V',
                              'annotation', 'mode'],
         [['video_0001', '1', '太好了', '0.8', '1', '1', '1', 'Positive', 'test'],
          ['video_0001', '2', '不行', '-0.6', '-1', '-1', '-1', 'Negative', 'test'],
          ['video_0002', '1', '嗯', '0.2', '0', '0', '0', 'Positive', 'valid']])
    _clip(sims / 'Raw' / 'video_0001' / '0001.mp4', 3)
    _clip(sims / 'Raw' / 'video_0001' / '0002.mp4', 4)
    root = base / 'root'
    tok = dict(tokenizer=os.path.join(params_dir, 'tokenizers', 'llm'),
               qformer_tokenizer=os.path.join(params_dir, 'tokenizers', 'qformer'))
    reports = {'MELD': prepare(cfg, 'meld', str(meld), str(root / 'MELD'), workers=1, **tok),
               'SIMS': prepare(cfg, 'sims', str(sims), str(root / 'SIMS'), workers=1, **tok)}
    return base, root, reports, write_wheel_folder(base / 'emotion_wheel')


def test_prepare_writes_the_test_set_its_gold_and_the_account(bench_root):
    base, root, reports, _ = bench_root
    meld = reports['MELD']['benchmark']
    assert (meld['dataset'], meld['test_clips'], meld['prepared'], meld['expected_test_clips']) == ('MELD', 3, 2, 2610)
    assert meld['question'] == BENCHMARK_QUESTION and len(meld['warnings']) == 2
    assert reports['MELD']['splits'] == {'test': 2}
    with open(root / 'MELD' / 'bench_gold.csv', encoding='utf-8') as f:
        assert list(csv.reader(f)) == [['name', 'emo'], ['test_dia0_utt0', 'joy'], ['test_dia0_utt1', 'anger'],
                                       ['test_dia1_utt0', 'neutral']]
    with open(root / 'SIMS' / 'bench_gold.csv', encoding='utf-8') as f:
        assert list(csv.reader(f)) == [['name', 'val'], ['video_0001_0001', '0.8'], ['video_0001_0002', '-0.6']]
    assert tfds_builder.splits(str(root / 'SIMS')) == ['test']


def test_one_command_scores_every_dataset_and_resumes(bench_root, params_dir, tmp_path, monkeypatch):  # noqa: F811
    _, root, _, wheel = bench_root
    out = tmp_path / 'out'
    table = benchmark.run_benchmark([params_dir], str(root), str(out), wheel=wheel, batch_size=2, max_new_tokens=6)
    assert table['columns'] == ['MELD', 'SIMS'] and [r['kind'] for r in table['rows']] == ['single checkpoint']
    label = table['rows'][0]['label']
    for dataset, metric, n, missing in (('MELD', 'hit_rate', 3, 1), ('SIMS', 'waf', 2, 0)):
        where = out / label / dataset
        score = json.loads((where / 'score.json').read_text())
        assert (score['n'], score['missing_predictions'], score['extractor']['labels']) == (n, missing, 'lexicon')
        with open(where / 'predictions.csv', encoding='utf-8') as f:
            assert len(list(csv.DictReader(f))) == n - missing
        again = score_dataset(argparse.Namespace(dataset=dataset, gold=str(root / dataset / 'bench_gold.csv'),
                                                 pred=str(where / 'predictions.csv'), wheel=wheel, sentiment=None,
                                                 synonyms=None))
        assert table['rows'][0]['scores'][dataset] == round(100 * again[metric], 2)
    md = (out / 'table.md').read_text()
    assert '| MELD | SIMS | Mean (2 of 9) |' in md and 'AffectGPT, published' in md
    assert (out / 'table.png').stat().st_size > 0
    # resume: nothing is generated again (the model is never loaded) and the table is the same
    monkeypatch.setattr(benchmark.params_lib, 'load', lambda *a, **k: pytest.fail('a finished dataset was redone'))
    assert benchmark.run_benchmark([params_dir], str(root), str(out), wheel=wheel, batch_size=2,
                                   max_new_tokens=6)['rows'] == table['rows']


def test_the_llm_extractor_reads_the_answers(bench_root, params_dir, tmp_path):  # noqa: F811
    """evaluate --bench --extractor llm:PATH (a tiny Qwen3 instruct folder that replies '[happy, calm]' to any
    prompt): every prediction is the extractor's reading of the model's answer, the table and each score.json name
    it by its folder, not its path, and count the replies that held no list."""
    _, root, _, wheel = bench_root
    qwen = scripted_folder(tmp_path / 'ckpt', '[happy, calm]')
    out = tmp_path / 'out'
    evaluate_main(['--bench', 'merunibench', '--params', params_dir, '--data-root', str(root), '--out', str(out),
                   '--wheel', wheel, '--extractor', f'llm:{qwen}', '--batch-size', '2', '--max-new-tokens', '6'])
    table = json.loads((out / 'table.json').read_text())
    assert table['extractor'] == {'labels': 'llm:qwen3_qknorm_untied', 'sentiment': 'llm:qwen3_qknorm_untied'}
    md = (out / 'table.md').read_text()
    assert 'Labels: llm:qwen3_qknorm_untied extractor' in md and str(tmp_path) not in md
    label, ex = table['rows'][0]['label'], LLMExtractor(qwen)           # the defaults evaluate uses
    for dataset in ('MELD', 'SIMS'):
        score = json.loads((out / label / dataset / 'score.json').read_text())
        with open(out / label / dataset / 'predictions.csv', encoding='utf-8') as f:
            rows = list(csv.DictReader(f))
        made = ex.extract_batch([r['name'] for r in rows], [r['explanation'] for r in rows])
        assert [(r['openset'], r['sentiment']) for r in rows] == [('[' + ', '.join(e.labels) + ']', e.sentiment)
                                                                  for e in made] == [('[happy, calm]', '[happy, calm]')] * 2
        assert score['extractor'] == {**table['extractor'], 'unread_label_replies': 0}
        assert table['datasets'][dataset]['unread_label_replies'] == {label: 0}
        assert score['resume_key']['extractor']['name'] == 'llm:qwen3_qknorm_untied'


def test_select_best_labels_the_per_dataset_best(bench_root, params_dir, tmp_path):  # noqa: F811
    _, root, _, wheel = bench_root
    with pytest.raises(benchmark.BenchError, match='--select best'):
        benchmark.run_benchmark([params_dir, params_dir], str(root), str(tmp_path), wheel=wheel)
    results = {'a': {'MELD': {'dataset': 'MELD', 'hit_rate': 0.5, 'n': 3, 'expected_n': 2610,
                              'missing_predictions': 0},
                     'SIMS': {'dataset': 'SIMS', 'waf': 0.25, 'n': 2, 'expected_n': 457, 'missing_predictions': 0}},
               'b': {'MELD': {'dataset': 'MELD', 'hit_rate': 0.25, 'n': 3, 'expected_n': 2610,
                              'missing_predictions': 1},
                     'SIMS': {'dataset': 'SIMS', 'waf': 0.75, 'n': 2, 'expected_n': 457, 'missing_predictions': 0}}}
    table = bench_table.build_table(results, select='best', extractor={'labels': 'x', 'sentiment': 'y'},
                                    question={'kind': 'benchmark', 'text': 'q'}, datasets_found={'MELD': 'm', 'SIMS': 's'})
    best = table['rows'][-1]
    assert best['label'] == 'per-dataset best of 2 checkpoints' and best['kind'] == "the papers' policy"
    assert (best['scores'], best['chosen'], best['mean']) == ({'MELD': 50.0, 'SIMS': 75.0}, {'MELD': 'a', 'SIMS': 'b'},
                                                              62.5)
    assert [r['mean'] for r in table['rows'][:2]] == [37.5, 50.0]


def test_the_table_counts_label_replies_without_a_list():
    score = {'dataset': 'MELD', 'hit_rate': 0.5, 'n': 3, 'expected_n': 2610, 'missing_predictions': 0,
             'extractor': {'labels': 'llm:Qwen2.5-7B-Instruct', 'sentiment': 'llm:Qwen2.5-7B-Instruct',
                           'unread_label_replies': 2}}
    table = bench_table.build_table({'a': {'MELD': score}}, select='single', extractor=score['extractor'],
                                    question={'kind': 'benchmark', 'text': 'q'}, datasets_found={'MELD': 'm'})
    assert table['datasets']['MELD']['unread_label_replies'] == {'a': 2}
    assert ("MELD: label replies of the llm:Qwen2.5-7B-Instruct extractor that held no list (those clips have no "
            "labels): {'a': 2}") in bench_table.markdown(table)


def test_cache_extractor_scores_published_caches(bench_root, tmp_path):
    _, root, _, wheel = bench_root
    for epoch, items in ((30, ['[happy]', '[angry, sad]']), (35, ['[sad]', '[furious]'])):
        run = tmp_path / 'output' / 'results-meld' / 'run'
        run.mkdir(parents=True, exist_ok=True)
        np.savez(run / f'checkpoint_0000{epoch}_loss_0.5-openset.npz', filenames=['test_dia0_utt0', 'test_dia0_utt1'],
                 fileitems=items)
    with pytest.raises(ValueError, match='name one with --checkpoint'):
        benchmark.run_benchmark([], str(root), str(tmp_path / 'o'), extractor='cache', wheel=wheel,
                                cache=str(tmp_path / 'output'), datasets=['MELD'])
    table = benchmark.run_benchmark([], str(root), str(tmp_path / 'o'), extractor='cache', select='best',
                                    wheel=wheel, cache=str(tmp_path / 'output'), datasets=['MELD'])
    rows = {r['label']: r for r in table['rows']}
    # joy -> happy hits at 30 in every wheel that maps it; anger -> angry is hit by 'angry' (30) and 'furious' (35)
    assert rows['checkpoint_000030']['scores']['MELD'] > rows['checkpoint_000035']['scores']['MELD']
    assert rows['per-dataset best of 2 checkpoints']['chosen'] == {'MELD': 'checkpoint_000030'}


def test_command_line_errors_are_one_line(bench_root, params_dir, tmp_path, capsys):  # noqa: F811
    _, root, _, _ = bench_root
    with pytest.raises(SystemExit, match='emotion wheels: give --wheel'):
        evaluate_main(['--bench', 'merunibench', '--params', params_dir, '--data-root', str(root), '--out',
                       str(tmp_path)])
    with pytest.raises(SystemExit, match='no prepared benchmark dataset'):
        evaluate_main(['--bench', 'merunibench', '--params', params_dir, '--data-root', str(tmp_path), '--out',
                       str(tmp_path / 'o')])
    with pytest.raises(SystemExit, match='llm:/nowhere: not a checkpoint folder'):
        evaluate_main(['--bench', 'merunibench', '--params', params_dir, '--data-root', str(root), '--out',
                       str(tmp_path / 'o'), '--extractor', 'llm:/nowhere', '--datasets', 'SIMS'])


@pytest.mark.integration
def test_two_processes_give_the_table_one_process_gives(bench_root, params_dir, tmp_path):  # noqa: F811
    """Two jax.distributed processes each answer every 2nd clip of each dataset; process 0 scores."""
    _, root, _, wheel = bench_root
    one = benchmark.run_benchmark([params_dir], str(root), str(tmp_path / 'one'), wheel=wheel, batch_size=2,
                                  max_new_tokens=4)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = [sys.executable, '-m', 'microemo_jax.evaluate', '--bench', 'merunibench', '--params', params_dir,
            '--data-root', str(root), '--out', str(tmp_path / 'two'), '--wheel', wheel, '--batch-size', '2',
            '--max-new-tokens', '4']
    procs = [subprocess.Popen(args, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, 'JAX_PLATFORMS': 'cpu', 'JAX_NUM_CPU_DEVICES': '1',
                                   'PYTHONPATH': repo, 'MICROEMO_COORDINATOR': f'127.0.0.1:{port}',
                                   'MICROEMO_NUM_PROCESSES': '2', 'MICROEMO_PROCESS_ID': str(i)})
             for i in range(2)]
    outs = [p.communicate(timeout=500) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out[-2000:] + err[-3000:]
    label = one['rows'][0]['label']
    parts = tmp_path / 'two' / label / 'MELD' / 'parts'
    assert all((parts / f'part-0000{i}.jsonl').read_text().strip() for i in range(2))   # both answered clips
    two = json.loads((tmp_path / 'two' / 'table.json').read_text())
    assert two['rows'] == one['rows']
    for dataset in ('MELD', 'SIMS'):
        assert ((tmp_path / 'two' / label / dataset / 'predictions.csv').read_text()
                == (tmp_path / 'one' / label / dataset / 'predictions.csv').read_text())


def test_records_for_another_model_and_two_folders_of_one_dataset_are_refused(bench_root, corpus, params_dir,  # noqa: F811
                                                                               tmp_path):
    _, root, reports, _ = bench_root
    cfg, _ = corpus
    folder = types.SimpleNamespace(cfg=cfg, path=params_dir)
    found = benchmark.find_datasets(str(root))
    check_compatible(folder, found['MELD'])                        # prepared with the model's shapes and tokenizer
    other = {**found['MELD'], 'report': {**reports['MELD'], 'config': {**reports['MELD']['config'], 'num_frames': 99}}}
    with pytest.raises(benchmark.BenchError, match='num_frames=99'):
        check_compatible(folder, other)
    shutil.copytree(root / 'SIMS', tmp_path / 'root' / 'a')
    shutil.copytree(root / 'SIMS', tmp_path / 'root' / 'b')
    assert list(benchmark.find_datasets(str(root), ['sims'])) == ['SIMS']          # a source name picks it too
    with pytest.raises(benchmark.BenchError, match='both hold SIMS'):
        benchmark.find_datasets(str(tmp_path / 'root'))


def test_label_files_alone_are_enough_for_the_cache_extractor(bench_root, corpus, tmp_path):  # noqa: F811
    """No clip at all: prepare still writes the gold and its account (then says no clip could be prepared), and
    the published caches are scored against that gold; a clip the cache lacks is a miss."""
    cfg, _ = corpus
    _, _, _, wheel = bench_root
    _csv(tmp_path / 'raw' / 'test_sent_emo.csv', MELD_HEADER,
         [['1', 'Yes!', 'Joey', 'joy', 'positive', '0', '0', '1', '1', '0', '0'],
          ['2', 'No.', 'Ross', 'sadness', 'negative', '0', '1', '1', '1', '0', '0']])
    with pytest.raises(ValueError, match='no clip could be prepared'):
        prepare(cfg, 'meld', str(tmp_path / 'raw'), str(tmp_path / 'root' / 'MELD'), workers=1)
    run = tmp_path / 'output' / 'results-meld' / 'run'
    run.mkdir(parents=True)
    np.savez(run / 'checkpoint_000030_loss_0.5-openset.npz', filenames=['test_dia0_utt0'], fileitems=['[joyful]'])
    table = benchmark.run_benchmark([], str(tmp_path / 'root'), str(tmp_path / 'o'), extractor='cache', wheel=wheel,
                                    cache=str(tmp_path / 'output'))
    assert table['datasets']['MELD']['missing_predictions'] == {'checkpoint_000030': 1}
    assert table['rows'][0]['scores']['MELD'] == 50.0      # joy hit, sadness missed, in every wheel that maps both
