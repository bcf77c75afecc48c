"""The installed environment the README promises: one OpenCV build, working command lines."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

from helpers import ROOT
from helpers.spec import authors_state_dict


def test_exactly_one_opencv_build_owns_cv2():
    builds = sorted({d.metadata["Name"].lower() for d in metadata.distributions()
                     if d.metadata["Name"] and d.metadata["Name"].lower().startswith("opencv")})
    assert builds == ["opencv-python"]
    import cv2
    assert callable(cv2.imshow) and cv2.__file__


def _run(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
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


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_pyproject_declares_the_same_pins_as_requirements():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _pins(project["dependencies"])
    assert declared == _pins((ROOT / "requirements.txt").read_text().splitlines())
    assert set(project["scripts"]) == {"m2snet", "m2snet-rt"}


def test_every_code_folder_is_a_package_that_an_install_carries():
    """pip installs the packages setuptools finds: a folder of modules without __init__.py
    works in a checkout and is missing from an installed copy."""
    from setuptools import find_packages
    found = set(find_packages(str(ROOT), include=["m2snet*", "realtime*", "kernels*"]))
    folders = {str(folder.relative_to(ROOT)).replace("/", ".")
               for top in ("m2snet", "realtime", "kernels")
               for folder in [ROOT / top, *(ROOT / top).rglob("*")]
               if folder.is_dir() and any(folder.glob("*.py"))}
    assert folders - found == set()


@pytest.mark.slow
def test_installed_tool_works_from_outside_the_repository(tmp_path):
    """``pip install .`` into a fresh virtual environment (dependencies taken from this one:
    --system-site-packages, --no-deps, as CI may do to save time), then the console commands
    run from another folder: the package, its bundled demo model and both command lines come
    from the installation, not from the repository."""
    import os
    import venv
    from helpers.videos import write_video
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(tmp_path / "env")
    bin_dir = tmp_path / "env" / "bin"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"),
           "M2SNET_CACHE": os.environ["M2SNET_CACHE"]}
    import shutil
    source = tmp_path / "src"  # a copy: building in place would leave build/ in the checkout
    for name in ("m2snet", "realtime", "kernels"):
        shutil.copytree(ROOT / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    install = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q",
                              "--no-deps", "--no-build-isolation", str(source)],
                             capture_output=True, text=True, timeout=600, env=env,
                             cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-2000:]
    where = subprocess.run([str(bin_dir / "python"), "-c",
                            "import realtime.engine as e; print(e.DEMO_WEIGHTS)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    demo = Path(where.stdout.strip())
    assert demo.is_file() and str(tmp_path / "env") in str(demo), where.stdout + where.stderr
    shown = subprocess.run([str(bin_dir / "m2snet"), "inspect", str(demo)], capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=300)
    assert shown.returncode == 0 and "mobilenetv3_large_100" in shown.stdout, shown.stderr
    video = tmp_path / "clip.mp4"
    write_video(video, [i / 30 for i in range(5)], 160, 120, phantom=True)
    done = subprocess.run([str(bin_dir / "m2snet-rt"), "annotate", str(video), "--out",
                           str(tmp_path / "out"), "--backend", "cpu", "--quiet"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 of 1 inputs complete" in done.stdout
    assert (tmp_path / "out" / "clip" / "masks.mkv").is_file()
    # numba's compiled kernels went to our cache, not beside the installed sources, where pip
    # would leave them behind on uninstall (a leftover m2snet/ folder shadows a later install)
    assert not list((tmp_path / "env").rglob("*.nbi"))
    assert list((Path(os.environ["M2SNET_CACHE"]) / "numba").rglob("*.nbi"))
    usage = subprocess.run([str(bin_dir / "m2snet-rt"), "--help"], capture_output=True,
                           text=True, env=env, cwd=tmp_path)
    assert usage.stdout.startswith("usage: m2snet-rt")


def _interrupted(args: list[str], marker: str, cwd: Path) -> tuple[int, str]:
    """Run ``python -m realtime ARGS``, send Ctrl-C (SIGINT) once ``marker`` is printed."""
    import os
    import select
    import signal
    import time
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": os.environ.get("HOME", "/tmp"),
           "M2SNET_CACHE": os.environ["M2SNET_CACHE"]}
    proc = subprocess.Popen([sys.executable, "-m", "realtime", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=cwd, env=env)
    seen, began = "", time.monotonic()
    while marker not in seen and time.monotonic() - began < 180:
        if select.select([proc.stdout], [], [], 0.5)[0]:
            seen += proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=90)
    return proc.returncode, seen + rest


def test_ctrl_c_exits_130_while_the_model_loads(tmp_path):
    from helpers.videos import write_video
    video = tmp_path / "clip.mp4"
    write_video(video, [i / 30 for i in range(30)], 160, 120)
    code, output = _interrupted(["annotate", str(video), "--out", str(tmp_path / "out")],
                                "backend auto ->", tmp_path)
    assert code == 130, output[-2000:]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_ctrl_c_exits_130_from_the_web_app(tmp_path):
    code, output = _interrupted(["app", "--port", "0", "--workdir", str(tmp_path / "app")],
                                "Ctrl-C stops it", tmp_path)
    assert code == 130, output[-2000:]
