"""Start ``jax.distributed`` when this is one process of a multi-process job; do nothing otherwise.

Call ``maybe_initialize()`` first thing in an entry point, BEFORE any other JAX call (``jax.devices()``,
creating an array, jitting): JAX fixes the set of devices at its first use.

Detection, first match wins:

1. explicit: ``MICROEMO_COORDINATOR`` (host:port of process 0), ``MICROEMO_NUM_PROCESSES``,
   ``MICROEMO_PROCESS_ID`` (falls back to ``JOB_COMPLETION_INDEX``, the pod index of a Kubernetes
   indexed Job / JobSet); optional ``MICROEMO_LOCAL_DEVICE_IDS`` (comma list). ``launch/local.sh`` and
   ``launch/k8s/jobset.yaml`` set these. A single process (NUM_PROCESSES=1) is left alone.
2. SLURM with more than one task (``SLURM_JOB_ID`` and ``SLURM_NTASKS`` > 1): JAX's SLURM detection
   (coordinator from the node list, process id from ``SLURM_PROCID``).
3. Kubernetes without the explicit variables (``KUBERNETES_SERVICE_HOST`` and ``JOB_COMPLETION_INDEX``):
   JAX's Kubernetes detection, which needs the ``kubernetes`` package and a service account allowed to
   list pods; if that package is missing we raise and say to set the MICROEMO_* variables instead.
4. Cloud TPU VM slices with several workers (``TPU_WORKER_HOSTNAMES`` lists more than one host, or
   ``MEGASCALE_COORDINATOR_ADDRESS`` is set): ``jax.distributed.initialize()`` with no arguments (JAX
   reads the TPU metadata).

Anything else (a laptop, one GPU box, a single-host TPU VM, a one-task SLURM job) runs as one process.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Mapping

import jax
from jax._src import distributed as jax_distributed

log = logging.getLogger(__name__)


def detect(env: Mapping[str, str] | None = None) -> tuple[str, dict] | None:
    """(launcher name, keyword arguments for jax.distributed.initialize) or None for a single process."""
    env = os.environ if env is None else env
    if env.get('MICROEMO_COORDINATOR'):
        n = env.get('MICROEMO_NUM_PROCESSES')
        pid = env.get('MICROEMO_PROCESS_ID', env.get('JOB_COMPLETION_INDEX'))
        if n is None or pid is None:
            raise ValueError("MICROEMO_COORDINATOR is set, so MICROEMO_NUM_PROCESSES and MICROEMO_PROCESS_ID "
                             "(or JOB_COMPLETION_INDEX) must be set too")
        try:
            n, pid = int(n), int(pid)
        except ValueError:
            raise ValueError(f"MICROEMO_NUM_PROCESSES={n!r} and MICROEMO_PROCESS_ID={pid!r} must be integers") from None
        if not 0 <= pid < n:
            raise ValueError(f"MICROEMO_PROCESS_ID={pid} must be in [0, MICROEMO_NUM_PROCESSES={n})")
        if n == 1:
            return None
        kwargs = dict(coordinator_address=env['MICROEMO_COORDINATOR'], num_processes=n, process_id=pid)
        if env.get('MICROEMO_LOCAL_DEVICE_IDS'):
            kwargs['local_device_ids'] = [int(i) for i in env['MICROEMO_LOCAL_DEVICE_IDS'].split(',')]
        return 'explicit', kwargs
    if env.get('SLURM_JOB_ID') and int(env.get('SLURM_NTASKS', env.get('SLURM_NPROCS', '1')) or 1) > 1:
        return 'slurm', {}
    if env.get('KUBERNETES_SERVICE_HOST') and env.get('JOB_COMPLETION_INDEX') is not None:
        try:
            import kubernetes  # noqa: F401  (what JAX's detection uses)
        except ImportError:
            raise RuntimeError("Kubernetes job detected (JOB_COMPLETION_INDEX), but JAX's automatic setup needs "
                               "the `kubernetes` package; set MICROEMO_COORDINATOR, MICROEMO_NUM_PROCESSES and "
                               "MICROEMO_PROCESS_ID instead (see launch/k8s/jobset.yaml)") from None
        return 'kubernetes', {}
    hosts = [h for h in env.get('TPU_WORKER_HOSTNAMES', '').split(',') if h.strip()]
    if len(hosts) > 1 or env.get('MEGASCALE_COORDINATOR_ADDRESS'):
        return 'tpu', {}
    return None


def maybe_initialize(env: Mapping[str, str] | None = None,
                     initialize: Callable[..., None] | None = None) -> str | None:
    """Initialise jax.distributed if this is a multi-process job; returns the launcher found, or None."""
    found = detect(env)
    if found is None:
        return None
    if initialize is None:
        if jax.distributed.is_initialized():
            return found[0]
        initialize = jax.distributed.initialize
    name, kwargs = found
    log.info("initialising jax.distributed (%s): %s", name, kwargs or 'auto-detected')
    initialize(**kwargs)
    return name


def barrier(name: str, timeout_s: int = 3600) -> None:
    """Wait until every process reaches ``name`` (no-op for one process).

    Uses the coordination service, not a device collective: processes may arrive minutes apart (one
    compiled the step, another found it in the compile cache), which a collective's connect timeout
    would not survive. Each ``name`` may be used once per run.
    """
    if jax.process_count() == 1:
        return
    jax_distributed.global_state.client.wait_at_barrier(name, timeout_in_ms=timeout_s * 1000)


def share_from_first(key: str, value: str | None = None, timeout_s: int = 600) -> str | None:
    """Process 0 publishes ``value`` under ``key``; every process returns it (coordination service, no devices).

    With one process this returns ``value``. Each ``key`` may be used once per run.
    """
    if jax.process_count() == 1:
        return value
    client = jax_distributed.global_state.client
    if jax.process_index() == 0:
        client.key_value_set(key, value if value is not None else '')
        return value
    return client.blocking_key_value_get(key, timeout_s * 1000)
