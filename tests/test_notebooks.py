"""Notebooks stay in step with the code: valid JSON, code cells compile, the configs they use load."""
import ast
import json
import os

import pytest

from microemo_jax.config import load_config

NOTEBOOKS = [os.path.join('notebooks', n) for n in sorted(os.listdir('notebooks')) if n.endswith('.ipynb')]


@pytest.mark.parametrize('path', NOTEBOOKS)
def test_notebook_code_compiles_and_its_ablation_configs_load(path):
    nb = json.load(open(path))
    sources = [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code']
    assert sources
    for src in sources:
        compile(src, path, 'exec')
    namespace = {'os': os}
    for src in sources:
        tree = ast.parse(src)
        for node in tree.body:  # pick up the ABLATIONS table without running training
            if isinstance(node, ast.Assign) and any(getattr(t, 'id', '') in ('ABLATIONS', 'STEPS') for t in node.targets):
                exec(compile(ast.Module([node], []), path, 'exec'), namespace)
    for overrides in namespace.get('ABLATIONS', {}).values():
        load_config('configs/emer.py:demo', overrides + [f"total_steps={namespace['STEPS']}"])


from tests.support.inference import corpus  # noqa: E402,F401  (a session-wide tiny prepared corpus)
from tests.support.tiny import as_demo_overrides  # noqa: E402


@pytest.mark.integration
@pytest.mark.slow
def test_ablation_notebook_runs_end_to_end_on_a_tiny_budget(corpus, tmp_path, monkeypatch):
    """Executes every code cell in order (one ablation, the tiny config's 4 steps, a tiny corpus): the table it
    prints has the ablation's validation loss and OV scores and the baseline row. The notebook loads the demo
    config: the overrides make it the tiny one, whose train step tests/test_train.py has compiled already."""
    import contextlib
    import io

    _, root = corpus
    monkeypatch.setenv('MICROEMO_ABLATIONS', 'full model')
    monkeypatch.setenv('MICROEMO_STEPS', '4')
    monkeypatch.setenv('MICROEMO_NEW_TOKENS', '8')
    monkeypatch.setenv('MICROEMO_RUNS', str(tmp_path / 'runs'))
    monkeypatch.setenv('MICROEMO_OVERRIDES', ' '.join(as_demo_overrides(f'data.dir={root / "prepared"}')))
    nb = json.load(open(os.path.join('notebooks', 'ablations.ipynb')))
    namespace, printed = {}, io.StringIO()
    with contextlib.redirect_stdout(printed):
        for cell in nb['cells']:
            if cell['cell_type'] == 'code':
                exec(compile(''.join(cell['source']), 'ablations.ipynb', 'exec'), namespace)
    table = printed.getvalue()
    assert list(namespace['results']) == ['full model']
    row = next(line for line in table.splitlines() if line.startswith('full model'))
    assert len(row.split()) == 7 and 'majority label' in table
    assert os.path.isfile(tmp_path / 'runs' / 'curves.png')
    assert os.path.isfile(tmp_path / 'runs' / 'full_model' / 'evaluate' / 'per_sample.csv')
