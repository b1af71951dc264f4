"""evaluate and predict end to end on a tiny prepared corpus and a tiny random model (no training compile):
the parameter folder, prompt stripping, one generation per video, scoring against the baseline, the
prediction JSON and timeline, and clear errors for bad input.

Where a result must be exact (labels, scores, group scores, stated times, utterance times), the model's texts
are known: ``ScriptedExplainer`` answers each clip with a text written here, and the expected numbers are
worked out by hand from the corpus's hidden truth (corpus.json, labels.csv, splits.csv).
"""
import csv
import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from tests.support.explainers import AppendSentence, ScriptedExplainer
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
    assert summary['scores']['n'] == len(videos) == summary['n_videos'] and summary['subset'] is None
    assert summary['baseline']['from_split'] == 'train'
    for key in ('accuracy_s', 'recall_s', 'avg'):
        assert 0.0 <= summary['scores'][key] <= 1.0
        assert 0.0 <= summary['baseline']['scores'][key] <= 1.0
    assert summary['generation']['max_new_tokens'] == 6
    assert json.load(open(tmp_path / 'summary.json'))['scores'] == summary['scores']
    assert 'majority' in format_table(summary)


def test_predict_writes_json_and_timeline(corpus, params_dir, tmp_path):
    """The real model generates; every answer ends with a known label sentence, so the labels are exact, and the
    utterances are the corpus's own (its subtitles), times to the millisecond."""
    from microemo_jax.inference.videos import Predictor, find_videos
    cfg, root = corpus
    truth = {c['name']: c for c in json.load(open(root / 'raw' / 'corpus.json'))['clips']}
    name = next(n for n in sorted(truth) if len(truth[n]['utterances']) <= cfg.model.max_utterances)  # not merged
    video = str(root / 'raw' / f'{name}.mp4')
    predictor = Predictor(params_dir, max_new_tokens=5)
    predictor.explainer = AppendSentence(predictor.explainer, " The character's emotional state is happy, surprised.")
    results = list(predictor.explain_clips(find_videos(video, None), out=str(tmp_path)))
    assert len(results) == 1
    r = json.load(open(tmp_path / f'{name}.mp4.json'))
    assert set(r) >= {'name', 'explanation', 'labels', 'utterances', 'timestamps', 'faces_found', 'generation'}
    assert r['labels'] == ['happy', 'surprised'] and r['explanation'].endswith('is happy, surprised.')
    assert r['utterance_source'] == 'subtitles'
    assert r['utterances'] == [{'start': u['start'], 'end': u['end'], 'text': u['text']}
                               for u in truth[name]['utterances']]
    assert r['utterances'][0]['start'] > 0.1          # the speech starts after a lead-in, never at 0
    assert len(r['timestamps']) == cfg.model.num_frames and r['faces_found'] > 0
    # the face close-ups (apex tubelets): consecutive frames from each frame's time up to the next frame's
    ends = r['timestamps'][1:] + [10.0]
    for t, end, times, found in zip(r['timestamps'], ends, r['face_times'], r['face_frames']):
        assert (len(times) == cfg.model.micro_expression.num_crops) == found and times == sorted(times)
        assert not times or (t - 1e-3 <= times[0] and times[-1] <= end + 1e-3), (t, times, end)
    import cv2
    img = cv2.imread(str(tmp_path / f'{name}.mp4.timeline.png'))
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


def test_evaluate_refuses_data_prepared_with_other_tokenizers(corpus, params_dir, tmp_path):
    """Scores from token ids the weights never learned would be gibberish that looks like a result."""
    from microemo_jax.data.tokenizer_identity import TokenizerMismatch
    from microemo_jax.inference.scoring import evaluate
    from tests.support.retokenize import retokenized_copy
    cfg, root = corpus
    other = retokenized_copy(root / 'prepared', tmp_path / 'reprepared', cfg)
    with pytest.raises(TokenizerMismatch, match='tokenizer') as refused:
        evaluate(params_dir, other, 'validation', str(tmp_path / 'out'), batch_size=2, max_new_tokens=2)
    assert params_dir in str(refused.value) and other in str(refused.value)           # names both sides
    assert not os.path.exists(tmp_path / 'out' / 'summary.json')


def _copy_params(params_dir, dest):
    import shutil
    shutil.copytree(params_dir, dest)
    return str(dest)


def test_a_params_folder_with_swapped_tokenizers_is_refused(corpus, params_dir, tmp_path):
    """predict, evaluate and serve tokenize with the folder's tokenizers: they must be the ones its weights learned."""
    import shutil

    from microemo_jax import params
    from microemo_jax.data.tokenizer_identity import TokenizerMismatch
    from tests.support.retokenize import retokenized_copy
    cfg, root = corpus
    other = retokenized_copy(root / 'prepared', tmp_path / 'reprepared', cfg)
    folder = _copy_params(params_dir, tmp_path / 'params')
    shutil.rmtree(os.path.join(folder, 'tokenizers', 'llm'))
    shutil.copytree(os.path.join(other, 'tokenizers', 'llm_tokenizer'), os.path.join(folder, 'tokenizers', 'llm'))
    with pytest.raises(params.ParamsUnreadable, match=r'tokenizers/llm/tokenizer\.json'):   # the checksums see it
        params.load(folder)
    os.remove(os.path.join(folder, 'checksums.json'))                 # a folder written before checksums were kept
    with pytest.raises(TokenizerMismatch, match=rf'tokenizer mismatch: the weights of {folder}.*LLM tokenizer differs'):
        params.load(folder)


def _flip_largest(folder):
    files = [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs]
    victim = max(files, key=os.path.getsize)
    with open(victim, 'r+b') as f:
        f.seek(os.path.getsize(victim) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))
    return victim


def test_a_bit_flip_in_a_params_folder_is_refused_naming_the_file(corpus, params_dir, tmp_path, capfd):
    """Orbax reads a flipped bit without complaint: every file is checked against the checksums written with it,
    by what predict/evaluate/serve load (params.load) and by what init.params loads (params.load_params)."""
    from microemo_jax import params
    from microemo_jax.training.state import abstract_train_state, model_params
    cfg, _ = corpus
    folder = _copy_params(params_dir, tmp_path / 'params')
    victim = _flip_largest(os.path.join(folder, 'params'))
    rel = os.path.relpath(victim, folder)
    with pytest.raises(params.ParamsUnreadable, match=rf'{folder}.*{rel}.*does not match its checksum'):
        params.load(folder)
    from microemo_jax.sharding import make_mesh
    wanted = model_params(abstract_train_state(cfg, make_mesh({'data': -1, 'fsdp': 1, 'tensor': 1})))
    with pytest.raises(params.ParamsUnreadable, match=rf'{rel}.*does not match its checksum'):
        params.load_params(folder, wanted)
    # a folder written before checksums existed loads, with one line saying how to stamp it
    unstamped = _copy_params(params_dir, tmp_path / 'old')
    os.remove(os.path.join(unstamped, 'checksums.json'))
    capfd.readouterr()
    params.load(unstamped)
    params.load(unstamped)
    warnings = [line for line in capfd.readouterr().err.splitlines() if 'checksums.json' in line]
    assert len(warnings) == 1 and 'stamp' in warnings[0]
    from microemo_jax.checksums import stamp, verify
    stamp(unstamped)                                                  # the documented one-liner
    assert verify(unstamped)


def test_predict_writes_one_json_per_video_when_stems_collide(corpus, params_dir, tmp_path):
    """a.mp4 and a.avi in one folder: two outputs at the top of --out, named after the whole file name."""
    import shutil

    from microemo_jax.inference.videos import Predictor, find_videos
    from tests.support.media import moving_face_frames, write_mjpeg_avi
    _, root = corpus
    videos = tmp_path / 'videos'
    videos.mkdir()
    shutil.copy(root / 'raw' / 'demo_00000.mp4', videos / 'a.mp4')
    write_mjpeg_avi(videos / 'a.avi', moving_face_frames(12, height=64, width=64, face_size=40)[0])
    out = tmp_path / 'out'
    results = list(Predictor(params_dir, max_new_tokens=2).explain_clips(find_videos(str(videos), None), out=str(out)))
    assert sorted(r['file'] for r in results) == ['a.avi', 'a.mp4'] and {r['name'] for r in results} == {'a'}
    assert sorted(os.listdir(out)) == ['a.avi.json', 'a.avi.timeline.png', 'a.mp4.json', 'a.mp4.timeline.png']
    for name in ('a.avi', 'a.mp4'):
        assert json.load(open(out / f'{name}.json'))['video'] == str(videos / name)


def test_evaluate_limit_takes_n_of_at_least_one_and_the_summary_says_it_scored_a_subset(corpus, params_dir, tmp_path):
    """`--limit -18` used to score videos[:-18] (2 of 20) as if it were the split."""
    from microemo_jax.evaluate import main
    from microemo_jax.inference.scoring import evaluate
    from microemo_jax.metrics.per_sample import format_table
    _, root = corpus
    args = ['--params', params_dir, '--data', str(root / 'prepared'), '--out', str(tmp_path / 'cli')]
    for bad in ('0', '-18'):
        with pytest.raises(SystemExit, match=rf'^error: --limit must be a whole number >= 1 .*got {bad}$'):
            main(args + ['--limit', bad])
    assert not os.path.exists(tmp_path / 'cli')
    summary = evaluate(params_dir, str(root / 'prepared'), 'validation', str(tmp_path / 'one'), batch_size=1,
                       max_new_tokens=2, limit=1)
    subset = summary['subset']
    assert subset['limit'] == 1 and subset['scored'] == 1 == summary['n_videos'] < subset['of']
    assert subset['of'] == summary['n_videos_in_split']
    assert 'a subset: the first 1 of its' in format_table(summary)
# ------------------------------------------------------------------------------- exact scores, known texts
def _truth(root) -> dict:
    """Per clip of the corpus: emotion, scenario, gold labels, gold explanation, split."""
    clips = {c['name']: {'emotion': c['emotion'], 'scenario': c['scenario'], 'micro': c['micro']}
             for c in json.load(open(root / 'raw' / 'corpus.json'))['clips']}
    with open(root / 'raw' / 'labels.csv', newline='') as f:
        for row in csv.DictReader(f):
            clips[row['name']].update(gold=json.loads(row['openset'].replace("'", '"')), reason=row['reason'])
    with open(root / 'prepared' / 'splits.csv', newline='') as f:
        for row in csv.DictReader(f):
            clips[row['name']]['split'] = row['split']
    return clips


def _synonyms_file(tmp_path) -> str:
    """One synonym group per demo emotion (its label words), so each clip's gold labels are one group."""
    from microemo_jax.demo.script import PHRASES
    path = tmp_path / 'synonyms.json'
    path.write_text(json.dumps([[e] + words for e, words in PHRASES['synonyms'].items()]))
    return str(path)


def _other(emotion: str) -> str:
    return 'happy' if emotion != 'happy' else 'sad'


# clip k (sorted) of the split is answered by pattern k % 3, each with the per-clip (accuracy, recall) it earns:
# its emotion alone (1, 1); its emotion and another one (1/2, 1); another emotion alone (0, 0)
PATTERNS = (("The character's emotional state is {e}.", 1.0, 1.0),
            ("The character's emotional state is {e}, {o}.", 0.5, 1.0),
            ("The character's emotional state is {o}.", 0.0, 0.0))


def _scripted(truth: dict, split: str) -> tuple[dict, dict, dict]:
    """(texts, expected labels, expected (accuracy, recall)) per clip of ``split``. A clip whose gold explanation
    dates an event gets a sentence dating it 0.3 s late."""
    from microemo_jax.metrics.grounding import stated_times
    texts, labels, expected = {}, {}, {}
    for k, name in enumerate(sorted(n for n, c in truth.items() if c['split'] == split)):
        e = truth[name]['emotion']
        text, acc, rec = PATTERNS[k % 3]
        gold_times = [t.seconds for t in stated_times(truth[name]['reason'])]
        late = ''.join(f'At about {t + 0.3:.1f}s her brows move. ' for t in gold_times)
        texts[name] = late + text.format(e=e, o=_other(e))
        labels[name] = {0: [e], 1: [e, _other(e)], 2: [_other(e)]}[k % 3]
        expected[name] = (acc, rec)
    return texts, labels, expected


def _mean(values) -> float:
    return sum(values) / len(values)


def test_evaluate_gives_the_scores_worked_out_by_hand(corpus, params_dir, tmp_path, monkeypatch):
    """On the train split (its majority label is one of its own clips' labels, so the baseline scores above 0)."""
    from microemo_jax.inference import scoring
    from microemo_jax.metrics.per_sample import format_table, read_per_sample
    _, root = corpus
    truth = _truth(root)
    texts, labels, expected = _scripted(truth, 'train')
    ScriptedExplainer(texts).install(monkeypatch, scoring)
    summary = scoring.evaluate(params_dir, str(root / 'prepared'), 'train', str(tmp_path), batch_size=2,
                               synonyms=_synonyms_file(tmp_path), groups=str(root / 'raw' / 'groups.csv'))
    rows = read_per_sample(tmp_path / 'per_sample.csv')
    assert {r['name']: r['predicted'] for r in rows} == labels
    assert {r['name']: r['gold'] for r in rows} == {n: truth[n]['gold'] for n in labels}
    s = summary['scores']
    assert (s['n'], s['accuracy_s'], s['recall_s']) == (len(labels), pytest.approx(_mean([a for a, _ in
                                                        expected.values()])), pytest.approx(_mean([r for _, r in
                                                                                              expected.values()])))
    # the baseline: the most frequent label of the train split (ties: alphabetical) for every clip
    counts = Counter(w for n in labels for w in truth[n]['gold'])
    majority = sorted(w for w, c in counts.items() if c == max(counts.values()))[0]
    from microemo_jax.demo.script import PHRASES
    hits = [1.0 if majority in [truth[n]['emotion']] + PHRASES['synonyms'][truth[n]['emotion']] else 0.0
            for n in labels]                                     # one gold group, one predicted label
    assert summary['baseline']['label'] == majority and summary['baseline']['from_split'] == 'train'
    assert summary['baseline']['scores']['accuracy_s'] == pytest.approx(_mean(hits)) and _mean(hits) > 0
    assert summary['baseline']['scores']['recall_s'] == pytest.approx(_mean(hits))
    # every group of the corpus's groups file, scored apart
    scenarios = {}
    for n in labels:
        scenarios.setdefault(truth[n]['scenario'], []).append(n)
    by_group = summary['groups']['columns']['group']
    assert sorted(by_group) == sorted(scenarios)
    for g, names in scenarios.items():
        block = by_group[g]
        assert block['n'] == len(names)
        assert block['scores']['accuracy_s'] == pytest.approx(_mean([expected[n][0] for n in names]))
        assert block['scores']['recall_s'] == pytest.approx(_mean([expected[n][1] for n in names]))
        low, high = block['intervals']['model']['accuracy_s']
        assert low <= block['scores']['accuracy_s'] <= high
        if len(names) == 1:
            assert low == high == expected[names[0]][0]
    micro = {('micro' if truth[n]['micro'] else 'other') for n in labels}
    assert set(summary['groups']['columns']['micro']) == micro
    assert summary['groups']['not_in_split'] == sum(1 for c in truth.values() if c['split'] != 'train')
    # the stated times: 0.3 s late on every dated gold event, and stated by every clip whose gold dates one
    timed = [n for n in labels if rows[[r['name'] for r in rows].index(n)]['gold_times']]
    assert timed, 'the tiny corpus should have a clip whose gold explanation states a time (a micro-expression)'
    g = summary['grounding']
    assert g['n_gold_timed'] == len(timed) and g['share_stating_time'] == 1.0
    assert g['mae_s'] == pytest.approx(0.3, abs=1e-6) and g['mae_s_interval'] == [pytest.approx(0.3)] * 2
    assert g['share_stating_time_untimed'] == 0.0
    for r in rows:
        assert r['stated_times'] == pytest.approx([t + 0.3 for t in r['gold_times']])
    # the time baseline: the median of the train split's gold times, stated for every clip
    gold_times = [t for r in rows for t in r['gold_times']]
    median = sorted(gold_times)[len(gold_times) // 2] if len(gold_times) % 2 else _mean(
        sorted(gold_times)[len(gold_times) // 2 - 1:len(gold_times) // 2 + 1])
    base = summary['time_baseline']
    assert base['seconds'] == pytest.approx(median) and base['from_split'] == 'train'
    assert base['grounding']['mae_s'] == pytest.approx(_mean([abs(t - median) for t in gold_times]))
    assert base['grounding']['share_stating_time'] == 1.0 == base['grounding']['share_stating_time_untimed']
    table = format_table(summary)
    assert 'by group' in table and 'by micro' in table and 'mean abs. error 0.30 s' in table
    assert f"time baseline: {median:.2f} s" in table


def test_evaluate_groups_a_clip_the_file_omits_and_counts_names_the_split_lacks(corpus, params_dir, tmp_path,
                                                                               monkeypatch):
    from microemo_jax.inference import scoring
    _, root = corpus
    truth = _truth(root)
    texts, _, expected = _scripted(truth, 'train')
    ScriptedExplainer(texts).install(monkeypatch, scoring)
    first, *rest = sorted(texts)
    groups = tmp_path / 'groups.csv'
    groups.write_text('name,group\n' + ''.join(f'{n},rest\n' for n in rest) + 'not_a_clip,rest\n')
    summary = scoring.evaluate(params_dir, str(root / 'prepared'), 'train', str(tmp_path / 'out'),
                               synonyms=_synonyms_file(tmp_path), groups=str(groups))
    blocks = summary['groups']['columns']['group']
    assert list(blocks) == ['rest', '(none)']
    assert blocks['(none)']['n'] == 1 and blocks['(none)']['scores']['accuracy_s'] == expected[first][0]
    assert blocks['rest']['scores']['recall_s'] == pytest.approx(_mean([expected[n][1] for n in rest]))
    assert summary['groups']['not_in_split'] == 1 and summary['groups']['not_in_split_examples'] == ['not_a_clip']


def test_shuffled_faces_come_from_another_clip_of_the_split(corpus, params_dir, tmp_path, monkeypatch):
    from microemo_jax.data import pipeline
    from microemo_jax.inference import scoring
    _, root = corpus
    truth = _truth(root)
    texts, _, _ = _scripted(truth, 'train')
    stub = ScriptedExplainer(texts).install(monkeypatch, scoring)
    summary = scoring.evaluate(params_dir, str(root / 'prepared'), 'train', str(tmp_path), shuffle_faces=1)
    assert summary['faces'] == {'shuffled': True, 'seed': 1}
    source = pipeline.open_split(str(root / 'prepared'), 'train')
    own = {}
    for i in range(len(source)):
        rec = source[i]
        own[rec['name'].decode().split('#')[0]] = rec
    given = {r['name'].decode().split('#')[0]: r for r in stub.records}
    assert sorted(given) == sorted(own)
    donors = {}
    for name, rec in given.items():
        np.testing.assert_array_equal(rec['frames_jpeg'], own[name]['frames_jpeg'])       # its own frames ...
        donor = next(n for n, o in own.items() if np.array_equal(o['faces_jpeg'], rec['faces_jpeg']))
        assert donor != name                                                               # ... another's faces
        np.testing.assert_array_equal(rec['face_landmarks'], own[donor]['face_landmarks'])
        donors[name] = donor
    assert sorted(donors.values()) == sorted(donors)   # every clip's faces go to exactly one other clip


@pytest.mark.parametrize('content, message', [
    ('name,label\na,x\n', r"no column\(s\) \['group'\]"),
    ('name,group\na,x\nb,y\na,z\n', r"'a' is listed twice \(rows 2 and 4\)"),
    ('name,group,group\na,x,y\n', r"column 'group' appears 2 times"),
    ('name,group\na,\n', r"row 2 \('a'\) has no value"),
    ('', 'the file is empty'),
])
def test_a_malformed_groups_file_is_one_clear_error_line(params_dir, corpus, tmp_path, content, message, capsys):
    from microemo_jax import evaluate as evaluate_cli
    _, root = corpus
    path = tmp_path / 'groups.csv'
    path.write_text(content)
    with pytest.raises(SystemExit) as e:
        evaluate_cli.main(['--params', params_dir, '--data', str(root / 'prepared'), '--out', str(tmp_path / 'o'),
                           '--groups', str(path)])
    text = str(e.value.code)
    assert text.startswith('error: --groups ') and '\n' not in text
    import re
    assert re.search(message, text), text
    assert not (tmp_path / 'o').exists()     # refused before any generation
