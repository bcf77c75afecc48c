"""Commands run with a folder on a tiny file system, to see what a full disk does: a tmpfs of
a few kilobytes mounted in a private mount namespace (``unshare``), so nothing outside the
command sees it and nothing needs unmounting."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from helpers import ROOT


def small_disk_missing() -> str | None:
    """Why a private tmpfs cannot be mounted here, or None."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, text=True)
    if probe.returncode:
        return f"cannot mount a private tmpfs here: {probe.stderr.strip()}"
    return None


@dataclass
class SmallDiskRun:
    returncode: int
    stdout: str
    stderr: str
    entries: list[str]  # what the folder held when the command ended
    used_kb: int        # kilobytes in use there then


MARK = "--- small disk ---"


def run_on_small_disk(folder: Path, kilobytes: int, python_args: list, cwd: Path,
                      timeout: float = 300) -> SmallDiskRun:
    """``python ARGS`` with ``folder`` (created) replaced by an empty tmpfs of ``kilobytes``,
    which is gone again afterwards (its contents and use are reported)."""
    folder.mkdir(parents=True, exist_ok=True)
    where = shlex.quote(str(folder))
    command = (f"mount -t tmpfs -o size={kilobytes}k tmpfs {where} && "
               f"{shlex.quote(sys.executable)} {shlex.join(map(str, python_args))}; code=$?; "
               f"echo '{MARK}'; df -k --output=used {where} | tail -1; ls -A {where}; "
               f"exit $code")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=env)
    stdout, _, report = done.stdout.partition(MARK + "\n")
    used, *entries = report.split()
    return SmallDiskRun(done.returncode, stdout, done.stderr, sorted(entries), int(used))
