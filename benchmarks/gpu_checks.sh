#!/usr/bin/env bash
# The device checks, run once on a lent GPU machine (no network there):
#   install hjsmooth without dependencies (the image has numpy, scipy, numba, torch, CuPy, tqdm,
#   matplotlib, pytest, hypothesis; array-api-compat travels as a wheel in .whl/, fetched on the
#   development machine before the run with `pip download --no-deps -d .whl array-api-compat`;
#   .whl/ is ignored by git, so the run names it in its carry list),
#   run the GPU tests, then the GPU benchmarks. Results land in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . 2>&1 | tail -2
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch, cupy, numpy; print('torch', torch.__version__, 'cupy', cupy.__version__, 'numpy', numpy.__version__)"; } 2>&1 | tee "$OUT/device.txt"
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider 2>&1 | tee "$OUT/pytest_gpu.txt" | tail -25
timeout 120 python3 benchmarks/bench_gpu.py --repeats 5 --out "$OUT/bench_gpu.json" 2>&1 | tee "$OUT/bench_gpu.txt"
