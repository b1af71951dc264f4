#!/usr/bin/env bash
# Run N training processes on this machine, as a multi-host job would (CPU devices, localhost coordinator).
#
#   launch/local.sh N --config configs/emer.py:demo --workdir /tmp/run [--config.KEY=VALUE ...]
#
# Each process gets JAX_NUM_CPU_DEVICES (default 2) devices; the processes form one mesh through
# jax.distributed (microemo_jax/training/distributed.py reads the MICROEMO_* variables set here).
# If one process fails, the others are stopped and the script exits with its status.
set -euo pipefail
n=${1:?usage: launch/local.sh NUM_PROCESSES TRAIN_ARGS...}; shift
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
port=${MICROEMO_PORT:-$(${python} -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
export JAX_NUM_CPU_DEVICES=${JAX_NUM_CPU_DEVICES:-2} JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
# XLA:CPU's concurrency-optimised scheduler can deadlock collectives across CPU devices; keep it off here.
export XLA_FLAGS="${XLA_FLAGS:-} --xla_cpu_enable_concurrency_optimized_scheduler=false"
export MICROEMO_COORDINATOR=127.0.0.1:${port} MICROEMO_NUM_PROCESSES=${n}
pids=()
for ((i = 0; i < n; i++)); do
  MICROEMO_PROCESS_ID=$i ${python} -m microemo_jax.train "$@" &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || { status=$?; kill "${pids[@]}" 2>/dev/null || true; }
done
exit $status
