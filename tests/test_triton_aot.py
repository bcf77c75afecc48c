"""The Triton subtraction-unit kernels compiled ahead of time for A100 (sm_80) and H100/H200
(sm_90) on this GPU-less machine (``python -m kernels.aot``): Triton's PTX, assembled by its
bundled ptxas into cubins, registers and spills read back by its cuobjdump. Nothing runs them
here (no GPU); benchmarks/gpu_check.sh runs the kernels themselves. It runs in a subprocess:
the test session has Triton's interpreter switched on (conftest), which cannot compile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

triton = pytest.importorskip("triton", reason="Triton is absent (it comes with CUDA builds of torch)")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> tuple[Path, list[dict]]:
    if not (Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas").is_file():
        pytest.skip("this Triton build ships no ptxas (it cannot assemble cubins without one)")
    folder = tmp_path_factory.mktemp("aot")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    subprocess.run([sys.executable, "-m", "kernels.aot", "--out", str(folder)], cwd=ROOT,
                   env=env, check=True, capture_output=True, timeout=600)
    return folder, json.loads((folder / "resources.json").read_text())


@pytest.mark.parametrize("arch", [80, 90])
def test_both_kernels_assemble_for_the_architecture(compiled, arch):
    folder, rows = compiled
    kernels = {r["kernel"] for r in rows if r["arch"] == arch}
    assert kernels == {"_channel_sums", "_subtract"}
    for row in (r for r in rows if r["arch"] == arch):
        cubin = (folder / f"{row['file']}.cubin").read_bytes()
        ptx = (folder / f"{row['file']}.ptx").read_text()
        assert cubin[:4] == b"\x7fELF"
        assert f".target sm_{arch}" in ptx and f".entry {row['kernel']}" in ptx
        # half inputs are widened and summed in float32, as the launcher expects
        assert ("cvt.f32.f16" in ptx) == (row["dtype"] == "fp16")


def test_registers_fit_and_nothing_spills(compiled):
    _, rows = compiled
    assert len(rows) == 2 * 3 * 2  # architectures x dtypes x kernels
    for row in rows:
        assert 0 < row["registers"] <= 255, row
        assert row["spill_bytes"] == 0, row
        assert row["num_warps"] == 4, row


def test_the_interpreter_is_refused_in_one_line():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    run = subprocess.run([sys.executable, "-m", "kernels.aot"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "TRITON_INTERPRET=1 is set" in run.stderr
