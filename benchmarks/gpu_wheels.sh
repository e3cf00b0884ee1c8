#!/usr/bin/env bash
# `make gpu-wheels`: downloads into .whl/ the wheels that the lent GPU machine (no network there) lacks
# for `make gpu-check`, so that they travel with the device tool's `carry: [".whl"]`.
#
# That machine's image has Python 3.12 with a CUDA torch, transformers, huggingface_hub, safetensors,
# numpy, pillow, tqdm, pytest, cmake and ninja, but no diffusers (nor its need importlib_metadata),
# trimesh or xatlas; pybind11 3 is carried too, in case the image's is older. Run this where pip
# reaches the package index; pass NAME==VERSION arguments to fetch other wheels instead. The wheels are
# for CPython 3.12 on x86-64 Linux (GPU_WHEELS_PYTHON_VERSION to change) and fetched without their
# dependencies: name each one that the target machine lacks. .whl/ is git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT=(diffusers==0.42.1 importlib_metadata==10.2.0 trimesh==5.2.0 xatlas==0.0.11 pybind11==3.1.0)
if (($#)); then wanted=("$@"); else wanted=("${DEFAULT[@]}"); fi
PY="${GPU_WHEELS_PIP_PYTHON:-python3}"
"$PY" -m pip --version >/dev/null 2>&1 || PY=.venv/bin/python
mkdir -p .whl
for spec in "${wanted[@]}"; do  # one version of each package: two stop the whole install there
  name="$(echo "${spec%%[=<>!~]*}" | tr '[:upper:]' '[:lower:]' | tr -- '-.' '__')"
  rm -f .whl/"$name"-*.whl
done
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "${GPU_WHEELS_PYTHON_VERSION:-3.12}" \
  --implementation cp "${platforms[@]}" -d .whl "${wanted[@]}"
echo "gpu-wheels: .whl/ now holds (carry it: carry=[\".whl\"]):"
ls -l .whl/*.whl
du -sh .whl
