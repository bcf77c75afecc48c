from __future__ import annotations

import ast
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

from m2snet.calibration import calibrate  # noqa: E402,F401  (tests import it from here)

DATA = Path(__file__).parent / "data"


def spec_entries(arch: str) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every entry of the authors' checkpoint, in their order."""
    entries = []
    for line in (DATA / f"{arch}_state_dict.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, shape = line.split("\t")
            entries.append((name, tuple(ast.literal_eval(shape))))
    return entries


def authors_state_dict(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict in the authors' exact layout (as listed in the spec)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in spec_entries(arch):
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(1000, dtype=torch.long)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[name] = torch.randn(shape, generator=gen) * 0.05
    return state


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


from helpers import ROOT  # noqa: E402


def run_cli(module: str, *args, timeout: float = 300, cwd=None, env_extra: dict | None = None,
            prefix: list[str] = ()):
    """Run ``[prefix] python -m module args`` in a clean environment without a display."""
    import subprocess
    import sys
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": os.environ.get("HOME", "/tmp"),
           "M2SNET_CACHE": os.environ["M2SNET_CACHE"], **(env_extra or {})}
    return subprocess.run([*prefix, sys.executable, "-m", module, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or ROOT, env=env)
