#!/usr/bin/env bash
# VGG-D training throughput on one GPU (JAX backend, bf16 and float32, XLA): bench/gpu.py's
# docstring says what each number means. Run from anywhere; works in the repository root.
#
#   bash bench/gpu.sh [gpu.py flags]      # the GPU run, under 8 minutes (its own timeout)
#   bash bench/gpu.sh --smoke             # seconds, on a CPU: checks that everything runs
#   bash bench/gpu.sh --recipe [flags]    # bench/gpu_recipe.py instead: the paper's recipe at
#                                         # full width (its docstring), results in $OUT
#   bash bench/gpu.sh --prepare-wheels    # HERE, with a network: wheels for a GPU host without one
#
# If $OUT is set, the report (gpu.md), every number (gpu.json) and the whole log (gpu.log) are
# written there too.
#
# The GPU host may have JAX but no Keras and no package registry. Keras 3.15.1 and the two of
# its requirements that such a host tends to lack (namex, optree) then come from wheels that
# --prepare-wheels downloads into dist/gpu-wheels (ignored by git; VGG_GPU_WHEELS names another
# folder): carry that folder to the GPU host. They are installed into a separate folder on
# PYTHONPATH, never into the host's environment, and only when the Python found there lacks
# keras 3.15.1. TensorFlow is never installed: the GPU benchmark does not use it.
#
# Environment: PYTHON (default .venv/bin/python if present, else python3), VGG_GPU_WHEELS,
# VGG_GPU_TIMEOUT (seconds for gpu.py, default 450: with the install, under 8 minutes).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

KERAS_VERSION=3.15.1
WHEELS=${VGG_GPU_WHEELS:-dist/gpu-wheels}
SITE=${TMPDIR:-/tmp}/vgg-gpu-site

if [ "${1:-}" = "--prepare-wheels" ]; then
    # Pure-Python wheels fit any Python; optree is compiled, so one per likely Python version
    # (pip on the GPU host picks the one that matches it). The pins are what this project's
    # .venv tested with keras 3.15.1.
    pip=(python3 -m pip)
    [ -x .venv/bin/python ] && pip=(.venv/bin/python -m pip)
    mkdir -p "$WHEELS" || exit 1
    "${pip[@]}" download -q --no-deps --only-binary=:all: -d "$WHEELS" \
        "keras==$KERAS_VERSION" namex==0.1.0 || exit 1
    for python_version in 3.10 3.11 3.12 3.13; do
        "${pip[@]}" download -q --no-deps --only-binary=:all: -d "$WHEELS" \
            --python-version "$python_version" --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            optree==0.20.0 || exit 1
    done
    ls -l "$WHEELS"
    du -sh "$WHEELS"
    exit 0
fi

if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2

has_keras() {
    "$PYTHON" -c "import sys, keras; sys.exit(keras.__version__ != '$KERAS_VERSION')" \
        >/dev/null 2>&1
}

if ! has_keras; then
    echo "keras $KERAS_VERSION not found for $PYTHON: installing it into $SITE" >&2
    # Keras's own requirements that are missing here (absl-py, h5py, ml-dtypes, numpy, packaging
    # and rich are usually installed alongside JAX; namex and optree often are not).
    missing=()
    for module in namex optree; do
        "$PYTHON" -c "import $module" >/dev/null 2>&1 || missing+=("$module")
    done
    source_args=()
    if [ -d "$WHEELS" ]; then source_args=(--no-index --find-links "$WHEELS"); fi
    "$PYTHON" -m pip install -q --no-deps --no-compile --no-cache-dir --upgrade \
        --disable-pip-version-check --target "$SITE" "${source_args[@]}" \
        "keras==$KERAS_VERSION" "${missing[@]}" || {
        echo "could not install keras $KERAS_VERSION (no $WHEELS and no registry?): run" \
             "'bash bench/gpu.sh --prepare-wheels' where pip works and carry $WHEELS" >&2
        exit 1
    }
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    if ! has_keras; then
        "$PYTHON" -c "import keras" 2>&1 | tail -3 >&2
        echo "keras $KERAS_VERSION still does not import from $SITE" >&2
        exit 1
    fi
fi

script=bench/gpu.py
if [ "${1:-}" = "--recipe" ]; then script=bench/gpu_recipe.py; shift; fi
python_args=("$@")
log=/dev/null
if [ -n "${OUT:-}" ] && [ "$script" = bench/gpu.py ]; then
    mkdir -p "$OUT" || exit 1
    python_args+=(--json "$OUT/gpu.json" --table "$OUT/gpu.md")
    log="$OUT/gpu.log"
fi

{
    command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi \
        --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
    # --kill-after: if the process ignores the TERM, it is killed 10 s later; gpu.json then
    # holds the rounds finished so far.
    timeout --kill-after=10 "${VGG_GPU_TIMEOUT:-450}" "$PYTHON" "$script" "${python_args[@]}"
    status=$?
    [ "$status" -eq 124 ] &&
        echo "$script stopped by its ${VGG_GPU_TIMEOUT:-450} s timeout" >&2
    exit "$status"
} 2>&1 | tee "$log"
