#!/usr/bin/env bash
# The performance table of bench/perf_table.py on a GPU or TPU, in bf16.
#
#   bash bench/accelerator.sh            # autodetects cuda / tpu
#   ACCEL=cuda12 bash bench/accelerator.sh
#   ACCEL=tpu    bash bench/accelerator.sh
#
# Self-contained: makes a virtualenv (.venv-accel), installs gt-jax with the
# matching jax extra (jax[cuda12] or jax[tpu]), checks that jax sees the
# accelerator, then prints the table (official 800x1333 + demo sizes,
# tracking B = 1 and 4, train steps M = 1 and 8 at both sizes) and writes
# bench/perf_<accel>.json. Takes a few minutes (most of it compiles).
set -euo pipefail

cd "$(dirname "$0")/.."
ACCEL="${ACCEL:-}"
if [[ -z "${ACCEL}" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1
  then
    ACCEL=cuda12
  elif [[ -e /dev/accel0 || -e /dev/vfio/0 ]]; then
    ACCEL=tpu
  else
    echo "no GPU (nvidia-smi) or TPU (/dev/accel0) found; set ACCEL=" \
         "cuda12|tpu to force, or run python bench/perf_table.py on CPU" >&2
    exit 2
  fi
fi
case "${ACCEL}" in
  cuda12) EXTRA="jax[cuda12]" ;;
  tpu) EXTRA="jax[tpu]" ;;
  *) echo "ACCEL=${ACCEL}: expected cuda12 or tpu" >&2; exit 2 ;;
esac

PY="${PYTHON:-python3}"
VENV="${VENV:-.venv-accel}"
if [[ ! -x "${VENV}/bin/python" ]]; then
  "${PY}" -m venv "${VENV}"
fi
"${VENV}/bin/python" -m pip install -q --upgrade pip
# The package (and its pinned-compatible deps), then the accelerator jax
# of the same version as the CPU jax pip resolved.
"${VENV}/bin/python" -m pip install -q -e .
JAX_VERSION="$("${VENV}/bin/python" -c 'import jax; print(jax.__version__)')"
"${VENV}/bin/python" -m pip install -q "${EXTRA}==${JAX_VERSION}" \
  || "${VENV}/bin/python" -m pip install -q -U "${EXTRA}"

"${VENV}/bin/python" - <<'EOF'
import jax
backend = jax.default_backend()
print("jax", jax.__version__, "backend", backend, jax.devices())
if backend == "cpu":
  raise SystemExit("jax did not find the accelerator (backend cpu); check "
                   "the driver / libtpu installation")
EOF

# bf16 compute with f32 params, as cfg.compute_dtype = "bfloat16".
XLA_PYTHON_CLIENT_PREALLOCATE=false "${VENV}/bin/python" bench/perf_table.py \
  --dtype bfloat16 --sizes demo,official --batches 1,4 \
  --train_sizes demo,official --instances 1,8 --runs 10 \
  --json "bench/perf_${ACCEL}.json"
