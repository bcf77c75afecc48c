from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

# Triton decides at import whether to interpret kernels: without a GPU, its interpreter runs
# the CUDA kernels on CPU tensors (set before anything imports triton).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
# Traced networks and compiled code of this run stay out of the user's cache (and later runs).
os.environ.setdefault("M2SNET_CACHE", tempfile.mkdtemp(prefix="m2snet-test-cache-"))

from m2snet.calibration import calibrate  # noqa: E402


@pytest.fixture(scope="session")
def float64_m2snet():
    """A calibrated float64 M2SNet shared by the (slow to build) equivalence tests."""
    import m2snet
    torch.manual_seed(0)
    model = m2snet.create_model("m2snet").double()
    return calibrate(model, torch.randn(2, 3, 96, 96, dtype=torch.float64))


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A small untrained M2SNet checkpoint (ResNet-18, width 8, 64 px input): fast runs of the
    runtime's machinery where what the model sees does not matter."""
    import m2snet
    torch.manual_seed(0)
    model = m2snet.create_model("m2snet", backbone="resnet18", width=8)
    return m2snet.save_checkpoint(model, tmp_path_factory.mktemp("w") / "tiny.pt", input_size=64)
