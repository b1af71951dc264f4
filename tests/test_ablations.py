"""The ablation runner (microemo_jax.runs.ablations, tools/ablations.py): which variants share the prepared
corpus, resuming, the table; end to end on the tiny config (integration: subprocesses train and evaluate)."""
import json
import os
import subprocess

import pytest

from microemo_jax.runs.ablation_table import markdown, table, write_table
from microemo_jax.runs.ablations import AblationError, AblationSettings, check_data, run_ablations

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_only_the_audio_ablation_changes_the_records(tmp_path, capsys):
    """The micro-expression, global-local and timestamp ablations read the full model's prepared demo corpus;
    without audio the prompt reserves no audio tokens, so that variant gets its own prepared copy (said so), and
    cannot share one explicit data.dir."""
    s = AblationSettings(out=str(tmp_path), seed=3, clips=40)
    data = check_data(s, ['full', 'no_micro', 'no_global_local', 'no_timestamps', 'shuffled_faces', 'no_audio'])
    assert len({data[n] for n in ('full', 'no_micro', 'no_global_local', 'no_timestamps', 'shuffled_faces')}) == 1
    assert data['no_audio'] != data['full'] and "'no_audio' changes the record layout" in capsys.readouterr().out
    fixed = AblationSettings(out=str(tmp_path), extra=(f'data.dir={tmp_path}/prepared',))
    assert len(set(check_data(fixed, ['full', 'no_micro', 'no_timestamps']).values())) == 1
    with pytest.raises(AblationError, match="'no_audio' changes the record layout.*audio_tokens"):
        check_data(fixed, ['full', 'no_audio'])


def test_a_run_with_other_settings_is_not_resumed_into_the_same_folder(tmp_path):
    (tmp_path / 'ablation.json').write_text(json.dumps(AblationSettings(steps=5).record()))
    with pytest.raises(AblationError, match='other settings'):
        run_ablations(AblationSettings(out=str(tmp_path), steps=6))
    with pytest.raises(AblationError, match='unknown variant'):
        run_ablations(AblationSettings(out=str(tmp_path / 'x'), variants=('full', 'no_brain')))


def _timed(mae, n=4):
    return {'mae_s': mae, 'mae_s_interval': [mae / 2, mae * 2] if mae else None, 'n_gold_timed': n,
            'share_stating_time': 0.5, 'n_matched': 2}


def _summary(avg, micro_avg, mae):
    block = lambda v, n: {'n': n, 'scores': {'avg': v, 'n': n}, 'intervals': {'model': {'avg': [v - 0.1, v + 0.1]}}}  # noqa: E731
    micro, other = block(micro_avg, 4), block(0.9, 6)
    micro.update(grounding=_timed(mae and mae * 3, 2), baseline_grounding=_timed(0.5, 2))
    other.update(grounding=_timed(mae and mae / 2, 2), baseline_grounding=_timed(0.3, 2))
    return {'n_videos': 10, 'scores': {'avg': avg, 'n': 10},
            'intervals': {'model': {'avg': [avg - 0.1, avg + 0.1]}, 'baseline': {'avg': [0.0, 0.2]}},
            'baseline': {'label': 'sad', 'scores': {'avg': 0.1, 'n': 10}},
            'groups': {'columns': {'group': {'congruent': block(0.9, 6), 'micro_masking': block(micro_avg, 4)},
                                   'micro': {'micro': micro, 'other': other}}},
            'grounding': {'mae_s': mae, 'mae_s_interval': [mae / 2, mae * 2] if mae else None, 'n_gold_timed': 4,
                          'share_stating_time': 0.5, 'n_matched': 2}}


def test_the_table_has_a_row_per_variant_and_the_micro_clips_second(tmp_path):
    results = {'full': _summary(0.8, 0.7, 0.2), 'no_micro': _summary(0.6, 0.25, None)}
    t = table(results)
    assert t['columns'] == ['all', 'micro', 'congruent', 'micro_masking']
    assert t['rows']['no_micro']['cells']['micro'] == {'n': 4, 'value': 0.25, 'interval': [0.15, 0.35]}
    md = markdown(t)
    assert '| full model | 0.80 [0.70, 0.90] | 0.70 [0.60, 0.80] |' in md
    assert '| no micro-expression branch |' in md and '| - | - | - | 50% of 4 |' in md and 'micro (n=4)' in md
    # the time error, whole and apart for the micro clips and the others (the shown expressions' onsets)
    assert '| time MAE s | time MAE s, micro clips | time MAE s, other clips | states a time |' in md
    assert '| 0.20 [0.10, 0.40] | 0.60 [0.30, 1.20] | 0.10 [0.05, 0.20] | 50% of 4 |' in md
    assert list(t['rows']) == ['full', 'no_micro', 'majority']
    assert '| majority label (sad), for reference | 0.10 [0.00, 0.20] | - |' in md
    paths = write_table(results, str(tmp_path))
    assert json.load(open(paths['json'])) == json.loads(json.dumps(t))
    assert os.path.getsize(paths['png']) > 10_000
    # with evaluate's time baseline, the reference row also gives the constant answer's time error
    results['full']['time_baseline'] = {'seconds': 1.3, 'from_split': 'train',
                                        'grounding': {'mae_s': 0.45, 'mae_s_interval': [0.4, 0.5], 'n_gold_timed': 4,
                                                      'share_stating_time': 1.0, 'n_matched': 4}}
    md = markdown(table(results))
    assert ('| majority label (sad); time: the median 1.3 s for every clip, for reference | 0.10 [0.00, 0.20] |'
            in md) and '| 0.45 [0.40, 0.50] | 0.50 [0.25, 1.00] | 0.30 [0.15, 0.60] | 100% of 4 |' in md


from tests.support.ablations import NEW_TOKENS, VARIANTS as RUN, command, env, overrides, tiny_ablation  # noqa: E402,F401  (a session-wide tiny run)


@pytest.mark.integration
@pytest.mark.slow
def test_the_runner_trains_scores_and_resumes_on_the_tiny_config(tiny_ablation):
    """tools/ablations.py with the tiny model (the demo config overridden to it, the tiny corpus as data.dir):
    the full model trains stage 1 then stage 2, is scored per scenario group, and is scored again with faces
    shuffled; a second run trains nothing and scores only what is missing."""
    out, root, first = tiny_ablation
    for stage in ('stage1', 'stage2'):
        assert os.path.isfile(out / 'full' / stage / 'params' / 'training.json')
    assert 'microemo_jax.train' in first.stdout and 'microemo_jax.evaluate' in first.stdout
    assert not os.path.exists(out / 'shuffled_faces' / 'stage1')           # scored, never trained
    full = json.load(open(out / 'full' / 'evaluate' / 'summary.json'))
    shuffled = json.load(open(out / 'shuffled_faces' / 'evaluate' / 'summary.json'))
    assert full['params'] == shuffled['params'] and shuffled['faces'] == {'shuffled': True, 'seed': 0}
    assert full['groups']['columns']['group'] and full['grounding']['n_clips'] == full['n_videos']
    t = json.load(open(out / 'ablations.json'))
    assert list(t['rows']) == ['full', 'shuffled_faces', 'majority'] and t['columns'][0] == 'all'
    assert 'full model' in (out / 'ablations.md').read_text() and os.path.getsize(out / 'ablations.png') > 10_000
    # resuming: the full model's evaluation is gone, its training is not: it is scored again, not trained again
    os.remove(out / 'full' / 'evaluate' / 'summary.json')
    again = subprocess.run(command(out, root), cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert 'microemo_jax.train' not in again.stdout and again.stdout.count('microemo_jax.evaluate') == 1
    assert again.stdout.count('done before') == 1 and os.path.isfile(out / 'full' / 'evaluate' / 'summary.json')


@pytest.mark.integration
@pytest.mark.slow
def test_ablation_notebook_runs_end_to_end_on_a_tiny_budget(tiny_ablation, monkeypatch):
    """Executes every code cell in order with the settings of the session's tiny ablation run (two variants,
    the tiny config as overrides of the demo config): it finds both variants done, trains nothing, and prints
    and draws the table."""
    import contextlib
    import io

    out, root, _ = tiny_ablation
    monkeypatch.setenv('MICROEMO_ABLATIONS', RUN)
    monkeypatch.setenv('MICROEMO_NEW_TOKENS', str(NEW_TOKENS))
    monkeypatch.setenv('MICROEMO_RUNS', str(out))
    monkeypatch.setenv('MICROEMO_OVERRIDES', ' '.join(overrides(root)))
    nb = json.load(open(os.path.join(REPO, 'notebooks', 'ablations.ipynb')))
    namespace, printed = {}, io.StringIO()
    with contextlib.redirect_stdout(printed):
        for cell in nb['cells']:
            if cell['cell_type'] == 'code':
                exec(compile(''.join(cell['source']), 'ablations.ipynb', 'exec'), namespace)
    text = printed.getvalue()
    assert list(namespace['results']) == RUN.split(',')
    assert text.count('done before') == 2 and '$ ' not in text
    assert '| full model |' in text and '| full model, faces shuffled between clips |' in text
    assert os.path.isfile(namespace['paths']['png'])
