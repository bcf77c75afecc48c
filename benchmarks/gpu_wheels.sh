#!/usr/bin/env bash
# Fetch, here, the wheels that benchmarks/gpu_check.sh needs on the GPU machine and its image
# lacks (it has torch, triton, timm, numba, OpenCV; not PyAV), for that machine's Python 3.12:
# PyAV, pycocotools, and the pure-Python tracker packages annotate imports (trackers,
# supervision and what they need beyond numpy/scipy/matplotlib).
# They land in .whl/ (ignored by git); the device run carries that folder (about 36 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
version=$(python3 -c "import av; print(av.__version__)" 2>/dev/null || echo 18.1.0)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "av==$version" pycocotools==2.0.11
python3 -m pip download -q --no-deps -d .whl trackers==2.6.1 supervision==0.31.2 \
    pydeprecate==0.13.0 defusedxml==0.7.1 pysodmetrics==1.4.3
ls -l .whl
