#!/usr/bin/env bash
# Run training on every worker of a Cloud TPU VM slice (e.g. v5e-16, v5e-64).
#
#   TPU_NAME=my-v5e-16 ZONE=us-west4-a launch/tpu_vm.sh --config configs/emer.py:paper --workdir gs://bucket/runs/paper
#
# The same command runs on all workers; jax.distributed.initialize() detects the TPU slice. The repository
# must be cloned at ~/microemo-jax on each worker (`make venv` there once, e.g. with this script's SETUP=1).
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
remote="cd ~/microemo-jax"
if [[ "${SETUP:-0}" == 1 ]]; then remote+=" && make venv"; fi
remote+=" && .venv/bin/python -m microemo_jax.train $(printf '%q ' "$@")"
gcloud compute tpus tpu-vm ssh "${TPU_NAME}" --zone "${ZONE}" --worker=all --command "${remote}"
