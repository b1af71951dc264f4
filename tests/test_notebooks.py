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
    namespace = {}
    for src in sources:
        tree = ast.parse(src)
        for node in tree.body:  # pick up the ABLATIONS table without running training
            if isinstance(node, ast.Assign) and any(getattr(t, 'id', '') in ('ABLATIONS', 'STEPS') for t in node.targets):
                exec(compile(ast.Module([node], []), path, 'exec'), namespace)
    for overrides in namespace.get('ABLATIONS', {}).values():
        load_config('configs/emer.py:demo', overrides + [f"total_steps={namespace['STEPS']}"])
