"""The machine and library versions a benchmark ran on, recorded beside its numbers."""

from __future__ import annotations

import platform
import socket
from pathlib import Path

import torch


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_environment() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def v(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    driver = None
    if gpu:
        import subprocess
        try:
            driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version",
                                     "--format=csv,noheader"], capture_output=True, text=True,
                                    timeout=20).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            driver = None
    return {"cpu": cpu_name(), "gpu": gpu, "driver": driver, "cuda": torch.version.cuda if gpu else None,
            "torch": torch.__version__, "torch_tensorrt": v("torch-tensorrt"),
            "openvino": v("openvino"), "timm": v("timm"),
            "numba": v("numba"), "av": v("av"), "opencv": v("opencv-python"),
            "python": platform.python_version(), "threads": torch.get_num_threads(),
            "hostname": socket.gethostname()}


def write_result(path: str | Path | None, result: dict) -> None:
    """Write a benchmark's result file if asked to (``--json``), atomically."""
    if path:
        from m2snet.files import write_json
        write_json(path, result)
