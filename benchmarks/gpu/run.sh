#!/usr/bin/env bash
# One call on the GPU machine: build the CUDA code, run the cuda-marked tests, run the GPU benchmarks.
# Everything lands in $OUT (JSON + logs). Works with the machine's own python3 (torch, CuPy, numpy,
# OpenCV, Pillow, click, pytest, onnx, onnxruntime are there); no install step, no network.
#   device run:  bash benchmarks/gpu/run.sh
set -uo pipefail
OUT=${OUT:-/tmp/edgedet-gpu-out}
mkdir -p "$OUT"
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
status=0

nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv | tee "$OUT/gpu.csv"
nvcc --version | tail -2 | tee -a "$OUT/gpu.csv"

echo "== cuda-marked tests"
# a test module whose imports are missing here (e.g. hypothesis) must not stop the others from running
$PY -m pytest -q -m cuda -p no:cacheprovider --continue-on-collection-errors tests/ --junitxml="$OUT/cuda_tests.xml" 2>&1 | tail -40 | tee "$OUT/cuda_tests.log" || status=1

echo "== GPU letterbox vs CPU"
$PY -m benchmarks.gpu.letterbox --json "$OUT/gpu_letterbox.json" 2>&1 | tee "$OUT/gpu_letterbox.log" || status=1

echo "== EdgeDetNMS plugin host logic on the real kernels (plugin_harness.cpp, every input combination vs the oracle)"
# needs TensorRT's C++ headers only (TENSORRT_ROOT, system folders); without them the JSON says it did not run
$PY -m benchmarks.gpu.plugin_harness --json "$OUT/plugin_harness.json" 2>&1 | tee "$OUT/plugin_harness.log" || status=1

if [ -f benchmarks/gpu/nms_cuda.py ]; then
  echo "== CUDA NMS kernels vs torchvision.ops.batched_nms (CUDA)"
  $PY -m benchmarks.gpu.nms_cuda --json "$OUT/nms_cuda.json" 2>&1 | tee "$OUT/nms_cuda.log" || status=1
fi
exit $status
