"""plan: ahead-of-time compile of the train step for a mesh, with memory, FLOPs and a batch-size search."""
import argparse
import json
import re

import pytest

from microemo_jax import plan
from microemo_jax.cli_checks import mesh_spec
from tests.support.tiny import config_args
from tests.support.training import SMALL


@pytest.mark.slow  # two ahead-of-time compiles of the train step
def test_plan_prints_memory_flops_and_the_largest_batch(capsys, tmp_path):
    argv = [*config_args(*SMALL, 'data.max_seq_len=48'), '--mesh', 'fsdp=2',
            '--batch', '2', '--memory-gib', '0.05', '--json', str(tmp_path / 'plan.json')]
    assert plan.main(argv) == 0
    out = capsys.readouterr().out
    assert "mesh {'data': 1, 'fsdp': 2, 'tensor': 1}" in out
    for key in ('arguments', 'outputs', 'temps', 'total', 'FLOPs per step', 'largest batch within 0.05 GiB'):
        assert key in out, key
    result = json.load(open(tmp_path / 'plan.json'))
    main = result['main']
    assert main['memory']['total'] > main['memory']['arguments'] > 0
    assert main['flops'] > 0 and main['per_device_batch'] == 1
    search = result['search']
    assert [c['global_batch'] for c in result['compiles']] == [2, 4]
    assert search['bytes_per_example'] > 0 and search['max_global_batch'] % 2 == 0
    fixed, slope = search['fixed_bytes'], search['bytes_per_example']
    assert fixed + slope * search['max_global_batch'] <= 0.05 * 2 ** 30 < fixed + slope * (search['max_global_batch'] + 2)


def test_mesh_argument_is_checked():
    assert mesh_spec('data=2,fsdp=4') == {'data': 2, 'fsdp': 4}
    for bad in ('fsdp', 'fsdp=-1', 'fsdp=abc', 'model=2', 'fsdp=2,fsdp=2'):
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(bad)):
            mesh_spec(bad)


@pytest.mark.slow  # four ahead-of-time compiles: the rollout's prefill and decode, the reference, the update
def test_stage3_plan_reports_each_program_and_the_peak_with_the_reference(capsys, tmp_path):
    argv = [*config_args(*SMALL, 'data.max_seq_len=48', 'stage=3', 'rl.max_new_tokens=8', 'rl.group_size=2'),
            '--mesh', 'fsdp=2', '--batch', '2', '--json', str(tmp_path / 'plan.json')]
    assert plan.main(argv) == 0
    out = capsys.readouterr().out
    assert 'stage 3 (GRPO)' in out and '2 clips x G=2 = 4 answers' in out and 'peak per device' in out
    r = json.load(open(tmp_path / 'plan.json'))['main']
    assert set(r['memory']) == {'prefill', 'decode', 'reference', 'update'}
    resident = r['resident']
    assert resident['reference'] > 0 and resident['train state'] > resident['reference']  # + optimiser state
    # the peak adds the resident arrays to what the hungriest program needs beyond the ones it reads
    assert r['peak'][r['peak_program']] == max(r['peak'].values()) >= sum(resident.values())
    assert r['flops']['update'] > r['flops']['reference'] > 0 and r['kv_cache_bytes'] > 0
