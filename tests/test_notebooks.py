"""Notebooks stay in step with the code: valid JSON, code cells compile, the ablation configs they run load.
The ablation notebook's end-to-end run is in test_ablations.py, beside the tiny ablation run it resumes (one file:
one test worker builds that run)."""
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
