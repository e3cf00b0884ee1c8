#!/usr/bin/env bash
# `make gpu-check`: proves csdkit's CUDA path on the GPU of this machine, from a fresh copy of the tree.
#
#   1. No GPU (nvidia-smi lists none and /proc/driver/nvidia/gpus is empty): one line, exit 0, nothing run.
#   2. Wheels in .whl/ (GPU_CHECK_WHEELS), if any: installed with --no-deps into build/gpu-check/site,
#      which goes first on PYTHONPATH (machines without network; `make gpu-wheels` fills .whl/).
#   3. The Python: GPU_CHECK_PYTHON if set (only it), else the first of .venv/bin/python, python3,
#      python whose torch sees the GPU. If none does and GPU_CHECK_NO_INSTALL is unset, a CUDA torch
#      is pip-installed into .venv from PyTorch's index for the newest CUDA the driver supports
#      (nvidia-smi's "CUDA Version": cu130, cu129, cu128, cu126, cu124, cu121 or cu118); else it says
#      what to do and exits 1.
#   4. benchmarks/gpu_check.py runs the phases (deps, CUDA build for this GPU only, C++ tests,
#      pytest -m cuda, quick GPU benchmarks), each under its own timeout, and writes
#      gpu-check.json, gpu-check.md and gpu-check.log into GPU_CHECK_DIR, else $OUT, else gpu-check/.
# Exit status: 0 when every phase passed (or there is no GPU), 1 otherwise.
#
# Rehearsal on a machine without a GPU (tests the plumbing, not CUDA): GPU_CHECK_NVIDIA_SMI=a fake
# nvidia-smi, GPU_CHECK_REHEARSE=1 (a torch without CUDA is accepted, benchmarks run on the CPU),
# GPU_CHECK_ARGS="--suites hashgrid --pytest-args 'tests/test_schedule.py'" (more driver arguments).
set -euo pipefail
cd "$(dirname "$0")/.."

SMI="${GPU_CHECK_NVIDIA_SMI:-nvidia-smi}"
gpu_lines=""
if command -v "$SMI" >/dev/null 2>&1; then
  gpu_lines="$("$SMI" -L 2>/dev/null | grep '^GPU ' || true)"
fi
if [[ -z "$gpu_lines" && ( -n "${GPU_CHECK_NVIDIA_SMI:-}" || ! -d /proc/driver/nvidia/gpus \
      || -z "$(ls -A /proc/driver/nvidia/gpus 2>/dev/null)" ) ]]; then
  echo "gpu-check: no CUDA GPU on this machine (nvidia-smi lists none): nothing to check, exiting 0"
  exit 0
fi

DEST="${GPU_CHECK_DIR:-${OUT:-gpu-check}}"
mkdir -p "$DEST"
LOG="$DEST/gpu-check.log"
: >"$LOG"
say() { echo "gpu-check: $*" | tee -a "$LOG"; }
notes=()
n_gpus="$(grep -c '^GPU ' <<<"$gpu_lines" || true)"
say "GPU: ${gpu_lines%%$'\n'*}$( ((n_gpus > 1)) && echo " (and $((n_gpus - 1)) more)" || true)"

# ---- 2. local wheels (the lent machine has no network: they travel in .whl/ via `carry`) ----------
WHEELS="${GPU_CHECK_WHEELS:-.whl}"
SITE="${GPU_CHECK_SITE:-$PWD/build/gpu-check/site}"
BOOT="${GPU_CHECK_PYTHON:-python3}"
shopt -s nullglob
wheels=("$WHEELS"/*.whl)
shopt -u nullglob
if ((${#wheels[@]})); then
  mkdir -p "$SITE"
  if timeout 300 "$BOOT" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" "${wheels[@]}" >>"$LOG" 2>&1; then
    notes+=("installed ${#wheels[@]} wheels from $WHEELS into $SITE: $(basename -a "${wheels[@]}" | tr '\n' ' ')")
  else
    notes+=("installing the wheels of $WHEELS into $SITE FAILED (see gpu-check.log)")
  fi
  say "${notes[-1]}"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi

# ---- 3. a Python whose torch sees the GPU -----------------------------------------------------------
torch_sees_gpu() {  # prints one line about $1's torch; status 0 when it sees a GPU
  timeout 120 "$1" -c 'import sys, torch
ok = torch.cuda.is_available() or bool(sys.argv[1])
print(f"torch {torch.__version__} (CUDA {torch.version.cuda})", "sees", torch.cuda.device_count() if ok else "no", "GPU")
sys.exit(0 if ok else 1)' "${GPU_CHECK_REHEARSE:-}" 2>/dev/null
}
if [[ -n "${GPU_CHECK_PYTHON:-}" ]]; then candidates=("$GPU_CHECK_PYTHON"); else candidates=(.venv/bin/python python3 python); fi
PY="" choice="" tried=()
for cand in "${candidates[@]}"; do
  command -v "$cand" >/dev/null 2>&1 || { [[ -x "$cand" ]] || continue; }
  if line="$(torch_sees_gpu "$cand")"; then
    PY="$(command -v "$cand" || echo "$cand")"
    [[ "$PY" == /* ]] || PY="$PWD/$PY"  # absolute, but not resolved: a venv's python is a symlink
    choice="$PY: $line"
    break
  fi
  tried+=("$cand: ${line:-no torch}")
done

joined() {  # "a; b; c", or "nothing"
  local out
  if (($#)); then out="$(printf '%s; ' "$@")"; echo "${out%; }"; else echo nothing; fi
}

driver_cuda="$("$SMI" 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\.[0-9]*\).*/\1/p' | head -n 1 || true)"
cuda_tag() {  # the newest PyTorch CUDA wheel tag this driver runs
  local have="${1:-0}" tag
  for tag in 13.0 12.9 12.8 12.6 12.4 12.1 11.8; do
    if awk -v a="$have" -v b="$tag" 'BEGIN { split(a, x, "."); split(b, y, ".");
        exit !((x[1] > y[1]) || (x[1] == y[1] && x[2] >= y[2])) }'; then
      echo "cu${tag/./}"
      return 0
    fi
  done
  return 1
}

if [[ -z "$PY" && -z "${GPU_CHECK_NO_INSTALL:-}" && -z "${GPU_CHECK_PYTHON:-}" ]] && tag="$(cuda_tag "$driver_cuda")"; then
  say "no Python here has a CUDA torch ($(joined ${tried[@]+"${tried[@]}"})); installing torch for $tag (driver CUDA $driver_cuda) into .venv"
  { [[ -x .venv/bin/python ]] || python3 -m venv .venv; } >>"$LOG" 2>&1 || true
  if [[ -x .venv/bin/python ]] && timeout 1200 .venv/bin/python -m pip install -q --upgrade --force-reinstall \
      --retries 1 --timeout 30 "${GPU_CHECK_TORCH_SPEC:-torch}" \
      --index-url "https://download.pytorch.org/whl/$tag" >>"$LOG" 2>&1 && line="$(torch_sees_gpu .venv/bin/python)"; then
    PY="$PWD/.venv/bin/python"
    choice="installed ${GPU_CHECK_TORCH_SPEC:-torch} ($tag, for the driver's CUDA $driver_cuda) into .venv: $line"
  else
    tried+=("pip install of torch ($tag) into .venv failed (no network?), see $LOG")
  fi
fi

if [[ -z "$PY" ]]; then
  tag="$(cuda_tag "$driver_cuda" || echo cu128)"
  msg="no Python with a CUDA-enabled torch (tried: $(joined ${tried[@]+"${tried[@]}"})). Install one, e.g. \
'python3 -m pip install torch --index-url https://download.pytorch.org/whl/$tag' ($tag: the newest CUDA build \
this driver runs; nvidia-smi says CUDA ${driver_cuda:-?}), or put a torch wheel for this Python in $WHEELS/, \
or set GPU_CHECK_PYTHON=/path/to/python; then run 'make gpu-check' again"
  say "$msg"
  python3 benchmarks/gpu_check.py record-failure --out "$DEST" --phase torch --message "$msg" \
    ${notes[@]+"${notes[@]/#/--note=}"} || true
  exit 1
fi
say "Python: $choice"

# ---- 4. the phases ----------------------------------------------------------------------------------
extra=()
[[ -z "${GPU_CHECK_REHEARSE:-}" ]] || extra+=(--device cpu)
if [[ -n "${GPU_CHECK_ARGS:-}" ]]; then
  eval "extra+=(${GPU_CHECK_ARGS})"  # the user's own words, split as the shell would
fi
exec "$PY" benchmarks/gpu_check.py run --out "$DEST" --python "$PY" --torch-choice "$choice" \
  ${notes[@]+"${notes[@]/#/--note=}"} ${extra[@]+"${extra[@]}"}
