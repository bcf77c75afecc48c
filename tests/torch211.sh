#!/usr/bin/env bash
# The model, kernel and engine tests under the GPU machines' library versions (torch 2.11.0,
# torchvision 0.26.0, triton 3.6.0), on the CPU: the code must keep working there, and that
# image is lent too rarely to find out on it. Everything else comes from the main install
# (a venv that sees its packages). NumPy stays below 2.4 in it: Triton 3.6's interpreter,
# which runs the Triton kernel's tests without a GPU, cannot loop beside NumPy 2.4.
#   bash tests/torch211.sh            (CI runs it after the main suite; ~1 GB of downloads)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TORCH211_VENV:-/tmp/m2snet-torch211}

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv --system-site-packages "$VENV"
fi
# PIP_CONSTRAINT= lifts these machines' cap on torch versions (it names the newer local one).
if ! PIP_CONSTRAINT= "$VENV/bin/python" -m pip install -q --no-deps torch==2.11.0 \
        torchvision==0.26.0 triton==3.6.0 "numpy>=2.3,<2.4"; then
    echo "torch211: could not install torch 2.11.0 from the package index; not checked" >&2
    exit 0  # a registry outage is not a fault of the code; the main suite has run
fi
"$VENV/bin/python" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_model.py \
    tests/test_subtraction.py tests/test_fold.py tests/test_checkpoint.py tests/test_segmenter.py \
    tests/test_resample.py tests/test_registry.py tests/test_triton_aot.py
