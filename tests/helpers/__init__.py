"""Helpers shared by the tests (import them from here; conftest keeps only fixtures)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository


def cli_env(extra: dict | None = None) -> dict:
    """The clean environment the command-line tests run in (no display, this checkout)."""
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
            "HOME": os.environ.get("HOME", "/tmp"), "M2SNET_CACHE": os.environ["M2SNET_CACHE"],
            **(extra or {})}


def run_cli(module: str, *args, timeout: float = 300, cwd=None, env_extra: dict | None = None,
            prefix: list[str] = ()) -> subprocess.CompletedProcess:
    """Run ``[prefix] python -m module args`` in a clean environment without a display, in
    ``cwd`` (the repository by default: never pytest's own working directory)."""
    return subprocess.run([*prefix, sys.executable, "-m", module, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT,
                          env=cli_env(env_extra))


def dice(a, b) -> float:
    """Dice of two boolean masks (numpy or torch); two empty masks agree (1.0)."""
    inter, total = (a & b).sum(), a.sum() + b.sum()
    inter, total = float(inter), float(total)
    return 1.0 if total == 0 else 2 * inter / total


def unprivileged() -> list[str]:
    """A command prefix under which permission bits hold: root keeps its user id (it can still
    run this Python, under /root) but loses the capabilities that override file modes."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def missing_tools(*tools: str, install: str) -> str | None:
    """Why these system tools cannot be used here (with how to install them), or None."""
    import shutil
    absent = [tool for tool in tools if shutil.which(tool) is None]
    return f"{', '.join(absent)} missing ({install})" if absent else None


def require(missing: str | None) -> None:
    """Skip the test where something it needs is missing, saying what; CI installs all of it
    (.ci/run), so there a missing tool fails instead of hiding the test."""
    import pytest
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
