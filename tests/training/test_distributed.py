"""Which launcher is detected and what jax.distributed.initialize receives (no real initialisation)."""
import pytest

from microemo_jax.training.distributed import detect, maybe_initialize


def test_single_process_does_nothing():
    calls = []
    for env in ({}, {'SLURM_JOB_ID': '7', 'SLURM_NTASKS': '1'}, {'TPU_WORKER_HOSTNAMES': 'localhost'},
                {'MICROEMO_COORDINATOR': 'h:1', 'MICROEMO_NUM_PROCESSES': '1', 'MICROEMO_PROCESS_ID': '0'}):
        assert maybe_initialize(env, initialize=lambda **kw: calls.append(kw)) is None
    assert calls == []


def test_explicit_coordinator_and_indexed_job():
    calls = []
    env = {'MICROEMO_COORDINATOR': '10.0.0.1:8476', 'MICROEMO_NUM_PROCESSES': '4', 'JOB_COMPLETION_INDEX': '2',
           'MICROEMO_LOCAL_DEVICE_IDS': '0,1', 'SLURM_JOB_ID': '1', 'SLURM_NTASKS': '4'}
    assert maybe_initialize(env, initialize=lambda **kw: calls.append(kw)) == 'explicit'
    assert calls == [dict(coordinator_address='10.0.0.1:8476', num_processes=4, process_id=2, local_device_ids=[0, 1])]
    with pytest.raises(ValueError, match='MICROEMO_PROCESS_ID'):
        detect({'MICROEMO_COORDINATOR': 'h:1', 'MICROEMO_NUM_PROCESSES': '2'})
    with pytest.raises(ValueError, match=r'must be in \[0'):
        detect({'MICROEMO_COORDINATOR': 'h:1', 'MICROEMO_NUM_PROCESSES': '2', 'MICROEMO_PROCESS_ID': '2'})


def test_auto_detected_clusters_let_jax_find_the_parameters():
    assert detect({'SLURM_JOB_ID': '12', 'SLURM_NTASKS': '16'}) == ('slurm', {})
    assert detect({'TPU_WORKER_HOSTNAMES': 'w0,w1,w2,w3'}) == ('tpu', {})
    with pytest.raises(RuntimeError, match='MICROEMO_COORDINATOR'):  # no `kubernetes` package here
        detect({'KUBERNETES_SERVICE_HOST': '10.0.0.1', 'JOB_COMPLETION_INDEX': '0'})
