#!/bin/bash
# Download, on this (networked) machine, the wheels the lab needs on the GPU machine, whose
# image has torch/numpy/scipy/pandas/matplotlib but not these (benchmarks/gpu/README.md).
# Versions are the ones pinned/installed here; the GPU machine runs CPython 3.12 (x86-64).
#   bash benchmarks/gpu/fetch_wheels.sh        # -> .whl/ (git-ignored via .git/info/exclude)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
PKGS=(
  gymnasium==1.4.0 farama-notifications==0.0.6 stable-baselines3==2.9.2 mujoco==3.3.0
  glfw==2.11.0 pyopengl==3.1.10 absl-py==2.5.1 etils==1.15.0 mo-gymnasium==1.3.2 pygame==2.6.1
  moocore==0.3.2 cffi==2.0.0 pycparser==3.0 platformdirs==4.14.9 pandas==2.3.3
  threadpoolctl==3.8.0 pyyaml==6.0.3 tqdm==4.70.1 cloudpickle==3.1.3
)
PLAT=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64 any; do PLAT+=(--platform "$p"); done
for pkg in "${PKGS[@]}"; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${PLAT[@]}" -d .whl "$pkg"
done
du -sh .whl
