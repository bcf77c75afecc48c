"""The installed environment the README promises: one OpenCV build, working command lines."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import torch

from conftest import authors_state_dict


def test_exactly_one_opencv_build_owns_cv2():
    builds = sorted({d.metadata["Name"].lower() for d in metadata.distributions()
                     if d.metadata["Name"] and d.metadata["Name"].lower().startswith("opencv")})
    assert builds == ["opencv-python"]
    import cv2
    assert callable(cv2.imshow) and cv2.__file__


def _run(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)


def test_cli_inspects_and_converts_authors_weights(tmp_path):
    src = tmp_path / "M2SNet.pth"
    torch.save({"module." + k: v for k, v in authors_state_dict("m2snet").items()}, src)
    out = tmp_path / "m2snet_ours.pt"
    done = _run("-m", "m2snet", "convert", str(src), str(out))
    assert done.returncode == 0, done.stderr
    shown = _run("-m", "m2snet", "inspect", str(out))
    assert shown.returncode == 0, shown.stderr
    assert "M2SNet(res2net50d, 1 class(es), width 64)" in shown.stdout
    assert f"converted_from {src}" in shown.stdout


def test_cli_failure_is_one_line_and_exit_1(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x80\x02not a checkpoint at all")
    done = _run("-m", "m2snet", "inspect", str(bad))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"error: {bad}: ")
    assert "Traceback" not in done.stderr


def test_cli_usage_error_exits_2():
    assert _run("-m", "m2snet", "explode").returncode == 2
    assert _run("-m", "realtime", "--no-such-flag").returncode == 2
