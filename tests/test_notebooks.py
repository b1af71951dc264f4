"""Notebooks stay in step with the code: valid JSON, code cells compile, the ablation configs they run load,
and the ablation notebook runs end to end (on the session's tiny ablation run, which it resumes)."""
import json
import os

import pytest

from microemo_jax.runs.ablations import VARIANTS, AblationSettings, variant_config

NOTEBOOKS = [os.path.join('notebooks', n) for n in sorted(os.listdir('notebooks')) if n.endswith('.ipynb')]


@pytest.mark.parametrize('path', NOTEBOOKS)
def test_notebook_code_compiles_and_its_ablation_configs_load(path):
    nb = json.load(open(path))
    sources = [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code']
    assert sources
    for src in sources:
        compile(src, path, 'exec')
    for name in VARIANTS:
        for stage in (1, 2):
            cfg = variant_config(AblationSettings(), name, stage)
            assert cfg.stage == stage
    assert not variant_config(AblationSettings(), 'no_micro').model.micro_expression.enabled


from tests.support.ablations import NEW_TOKENS, VARIANTS as RUN, overrides, tiny_ablation  # noqa: E402,F401


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
    nb = json.load(open(os.path.join('notebooks', 'ablations.ipynb')))
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
