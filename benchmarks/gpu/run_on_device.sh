#!/bin/bash
# The device-side command (the `run` tool, carry [".whl"]): install the carried wheels and the
# lab (no network there), then benchmarks/gpu_check.py on CUDA, results under $OUT.
#   bash benchmarks/gpu/run_on_device.sh [gpu_check.py arguments]
set -o pipefail
export PYTHONUNBUFFERED=1 MUJOCO_GL=egl
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/lab . || exit 4
export PYTHONPATH=/tmp/lab:/tmp/site
nvidia-smi -L
python3 benchmarks/gpu_check.py --device cuda --out "${OUT:-gpu_check_out}" "$@" 2>&1 \
  | tee "${OUT:-.}/gpu_check.log"
