#!/usr/bin/env bash
# Installs what Funnel's build and tests need, only when missing (Debian/Ubuntu):
#   libopenblas-dev + pkg-config  (linked by the COpenBLAS system-library target)
#   libopenmpi-dev + openmpi-bin  (the CMPI shim target; mpirun for data-parallel training and its tests)
#   libdnnl-dev                   (oneDNN 2.6, the CDNNL target: `--gemm onednn`; no pkg-config file)
#   python3 safetensors + numpy   (a test proves weights.safetensors opens in Python)
#   python3 lightgbm==4.7.0       (lib_lightgbm.so for `funnel gbdt`, and the parity test)
#   python3 onnx + onnxruntime    (tests and bench only: the ONNX export's checker and parity runs)
set -euo pipefail
need=()
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists openblas 2>/dev/null || need+=(libopenblas-dev)
pkg-config --exists ompi-c 2>/dev/null || need+=(libopenmpi-dev)
command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin)
[ -f /usr/include/oneapi/dnnl/dnnl.h ] || need+=(libdnnl-dev)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! python3 -c "import safetensors.numpy, numpy" 2>/dev/null; then
  echo "installing: python safetensors numpy" >&2
  python3 -m pip install --quiet safetensors numpy 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages safetensors numpy
fi
# LightGBM's C library for `funnel gbdt` (loaded at run time; the neural part never needs it),
# and the Python package the parity test compares against: one wheel gives both.
if ! python3 -c "import lightgbm, numpy; assert lightgbm.__version__ == '4.7.0'" 2>/dev/null; then
  echo "installing: python lightgbm==4.7.0" >&2
  python3 -m pip install --quiet "lightgbm==4.7.0" numpy 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "lightgbm==4.7.0" numpy
fi
# ONNX's checker and ONNX Runtime: used only by the export's parity tests and the bench.
if ! python3 -c "import onnx, onnxruntime, numpy" 2>/dev/null; then
  echo "installing: python onnx==1.23.2 onnxruntime==1.32.0" >&2
  python3 -m pip install --quiet "onnx==1.23.2" "onnxruntime==1.32.0" numpy 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "onnx==1.23.2" "onnxruntime==1.32.0" numpy
fi
