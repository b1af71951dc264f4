"""evaluate and predict end to end on a tiny prepared corpus and a tiny random model (no training compile):
the parameter folder, prompt stripping, one generation per video, scoring against the baseline, the
prediction JSON and timeline, and clear errors for bad input."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.support.inference import corpus, params_dir  # noqa: F401  (shared fixtures)


def test_params_folder_holds_everything_and_refuses_weights_only(params_dir, corpus, tmp_path):
    from microemo_jax import params
    folder = params.load(params_dir)
    assert folder.cfg.model.llm.num_layers == 1 and folder.cfg.data.max_seq_len == 640
    assert tuple(folder.cfg.sharding_rules[0][1]) == ('data', 'fsdp')  # tuples survive JSON
    assert folder.llm_tokenizer.eos_token_id is not None
    assert folder.info['data_dir'] == str(corpus[1] / 'prepared')
    # a weights-only folder (convert output) says what it lacks
    weights_only = tmp_path / 'w'
    os.makedirs(weights_only / 'params')
    with pytest.raises(params.ParamsFolderError, match='config.json.*tokenizers'):
        params.load(str(weights_only))
    with pytest.raises(params.ParamsFolderError, match='no params/'):
        params.load(str(tmp_path))


def test_stripped_prompt_is_the_inference_prompt(corpus, params_dir):
    """Cutting the answer off a prepared record gives exactly the prompt prepare builds without an answer."""
    import dataclasses

    from microemo_jax.data.raw.sources import read_source
    from microemo_jax.data.records.clip_processor import ClipProcessor, settings_from_config
    from microemo_jax.data.shapes import DataShapes
    from microemo_jax.inference.explainer import prompt_examples
    from microemo_jax.params import TOKENIZER_DIRS
    cfg, root = corpus
    clips, _ = read_source('folder', str(root / 'raw'))
    clip = next(c for c in clips if c.answer_kind == 'description')
    settings = settings_from_config(cfg, 'folder', os.path.join(params_dir, TOKENIZER_DIRS['llm']),
                                    os.path.join(params_dir, TOKENIZER_DIRS['qformer']))
    processor = ClipProcessor(settings)
    with_answer = processor(clip)
    without = processor(dataclasses.replace(clip, answer_kind=None))
    stripped, = prompt_examples([with_answer], cfg)
    reference, = prompt_examples([without], cfg)
    assert with_answer['loss_mask'].any() and not stripped['loss_mask'].any()
    n = int(reference['attention_mask'].sum())
    assert int(stripped['attention_mask'].sum()) == n < len(with_answer['input_ids'])
    np.testing.assert_array_equal(stripped['input_ids'], reference['input_ids'])
    np.testing.assert_array_equal(stripped['modality_positions'], reference['modality_positions'])
    assert DataShapes.from_config(cfg).seq_len == stripped['input_ids'].shape[0]


def test_plan_groups_targets_of_a_video_and_takes_its_gold():
    from microemo_jax.inference.scoring import majority_label, plan_videos
    source = [{'name': b'a', 'openset': b''}, {'name': b'a#ov', 'openset': b'["happy", "excited"]'},
              {'name': b'b#ov', 'openset': b'["sad"]'}, {'name': b'c', 'openset': b'["happy"]'}]
    plan = plan_videos(source, 'description')
    assert [(p['name'], p['index'], p['kind'], p['gold']) for p in plan] == [
        ('a', 0, 'description', ['happy', 'excited']), ('b', 2, 'ov', ['sad']), ('c', 3, 'description', ['happy'])]
    assert [p['index'] for p in plan_videos(source, 'ov')] == [1, 2, 3]
    assert majority_label(source) == 'happy'


def test_evaluate_scores_every_validation_video_once(corpus, params_dir, tmp_path):
    from microemo_jax.data import pipeline
    from microemo_jax.inference.scoring import evaluate, video_of
    from microemo_jax.metrics.per_sample import format_table
    cfg, root = corpus
    summary = evaluate(params_dir, str(root / 'prepared'), 'validation', str(tmp_path), batch_size=2,
                       max_new_tokens=6)
    val = pipeline.open_split(str(root / 'prepared'), 'validation')
    videos = sorted({video_of(val[i]['name'].decode()) for i in range(len(val))})
    with open(tmp_path / 'per_sample.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['name'] for r in rows] == videos
    assert all(json.loads(r['gold']) for r in rows)
    assert summary['scores']['n'] == len(videos) == summary['n_videos']
    assert summary['baseline']['from_split'] == 'train'
    for key in ('accuracy_s', 'recall_s', 'avg'):
        assert 0.0 <= summary['scores'][key] <= 1.0
        assert 0.0 <= summary['baseline']['scores'][key] <= 1.0
    assert summary['generation']['max_new_tokens'] == 6
    assert json.load(open(tmp_path / 'summary.json'))['scores'] == summary['scores']
    assert 'majority' in format_table(summary)


def test_predict_writes_json_and_timeline(corpus, params_dir, tmp_path):
    from microemo_jax.inference.videos import Predictor, find_videos
    cfg, root = corpus
    video = str(root / 'raw' / 'demo_00000.mp4')
    predictor = Predictor(params_dir, max_new_tokens=5)
    results = list(predictor.explain_clips(find_videos(video, None), out=str(tmp_path)))
    assert len(results) == 1
    r = json.load(open(tmp_path / 'demo_00000.json'))
    assert set(r) >= {'name', 'explanation', 'labels', 'utterances', 'timestamps', 'faces_found', 'generation'}
    assert r['utterance_source'] == 'subtitles' and r['utterances'] and all(u['text'] for u in r['utterances'])
    assert len(r['timestamps']) == cfg.model.num_frames and r['faces_found'] > 0
    # the face close-ups (apex tubelets): consecutive frames from each frame's time up to the next frame's
    ends = r['timestamps'][1:] + [10.0]
    for t, end, times, found in zip(r['timestamps'], ends, r['face_times'], r['face_frames']):
        assert (len(times) == cfg.model.micro_expression.num_crops) == found and times == sorted(times)
        assert not times or (t - 1e-3 <= times[0] and times[-1] <= end + 1e-3), (t, times, end)
    import cv2
    img = cv2.imread(str(tmp_path / 'demo_00000.timeline.png'))
    assert img is not None and img.shape[0] > 300 and img.std() > 10


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(args, cwd):
    return subprocess.run([sys.executable, '-m', *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': REPO}, timeout=300)


@pytest.mark.integration
def test_predict_cli_bad_input_names_the_path(params_dir, tmp_path):
    text = tmp_path / 'notes.mp4'
    text.write_text('this is not a video\n')
    out = _cli(['microemo_jax.predict', '--params', params_dir, '--video', str(text), '--max-new-tokens', '8'],
               tmp_path)
    assert out.returncode != 0 and 'Traceback' not in out.stderr
    assert str(text) in out.stderr
    missing = _cli(['microemo_jax.predict', '--params', params_dir, '--video', str(tmp_path / 'nope.mp4')], tmp_path)
    assert missing.returncode != 0 and 'no such file' in missing.stderr and 'Traceback' not in missing.stderr
    not_params = _cli(['microemo_jax.predict', '--params', str(tmp_path), '--video', str(text)], tmp_path)
    assert not_params.returncode != 0 and 'not a microemo-jax parameter folder' in not_params.stderr
    assert 'Traceback' not in not_params.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_evaluate_over_two_processes_gathers_what_one_process_gives(corpus, params_dir, tmp_path):
    """Two jax.distributed processes each take every 2nd video; process 0 gathers the parts and scores them."""
    import socket

    from microemo_jax.inference.scoring import evaluate
    _, root = corpus
    single = evaluate(params_dir, str(root / 'prepared'), 'validation', str(tmp_path / 'one'), batch_size=2,
                      max_new_tokens=4)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    args = [sys.executable, '-m', 'microemo_jax.evaluate', '--params', params_dir, '--data', str(root / 'prepared'),
            '--split', 'validation', '--out', str(tmp_path / 'two'), '--batch-size', '2', '--max-new-tokens', '4']
    procs = [subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, 'JAX_PLATFORMS': 'cpu', 'JAX_NUM_CPU_DEVICES': '1',
                                   'PYTHONPATH': REPO, 'MICROEMO_COORDINATOR': f'127.0.0.1:{port}',
                                   'MICROEMO_NUM_PROCESSES': '2', 'MICROEMO_PROCESS_ID': str(i)})
             for i in range(2)]
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out[-2000:] + err[-3000:]
    parts = sorted(os.listdir(tmp_path / 'two' / 'parts'))
    assert parts == ['part-00000.jsonl', 'part-00001.jsonl']
    assert all(open(tmp_path / 'two' / 'parts' / p).read().strip() for p in parts)   # both did some of the work
    two = json.load(open(tmp_path / 'two' / 'summary.json'))
    assert two['scores'] == single['scores'] and two['n_videos'] == single['n_videos']
    assert open(tmp_path / 'two' / 'per_sample.csv').read() == open(tmp_path / 'one' / 'per_sample.csv').read()


def test_the_baseline_reads_the_work_index_not_the_frames(corpus):
    """The majority label comes from prepare's JSON sidecars, and agrees with reading the split itself."""
    from microemo_jax.data import pipeline
    from microemo_jax.inference.scoring import indexed_records, majority_label
    _, root = corpus
    for split in ('train', 'validation'):
        index = indexed_records(str(root / 'prepared'), split)
        source = pipeline.open_split(str(root / 'prepared'), split)
        assert sorted(r['name'] for r in index) == sorted(source[i]['name'].decode() for i in range(len(source)))
        assert majority_label(index) == majority_label(source) is not None
    assert indexed_records(str(root / 'raw'), 'train') is None   # no prepared dataset there: read the split
