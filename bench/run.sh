#!/usr/bin/env bash
# `make bench`: Funnel's ESMM against PyTorch ESMMs of the same shape, in one run, on one
# simulated data set. PyTorch goes into a local, git-ignored virtualenv (never needed by tests).
set -euo pipefail
FUNNEL=${1:-.build/release/funnel}
VENV=${BENCH_VENV:-.venv-bench}
if ! "$VENV/bin/python" -c "import torch, numpy, safetensors.numpy, onnx, onnxruntime" 2>/dev/null; then
  echo "bench: installing PyTorch (CPU), numpy and safetensors into $VENV ..." >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "torch==2.13.0+cpu" numpy safetensors "onnx==1.23.2" "onnxruntime==1.32.0" 2>/dev/null || "$VENV/bin/pip" install -q torch numpy safetensors onnx onnxruntime
fi
exec "$VENV/bin/python" bench/bench.py --funnel "$FUNNEL" "${@:2}"
