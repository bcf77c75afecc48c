"""Writes an overlay video and a mask video of random frames into a folder too small for
them, then reports for each: where it failed (write or close), whether the process still holds
the file open after closing it, and the kilobytes in use once it is deleted (JSON lines)."""

import json
import os
import sys
from pathlib import Path

import numpy as np

from realtime.io.writers import MaskWriter, VideoWriter


def open_files() -> list[str]:
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return names


def main() -> None:
    folder = Path(sys.argv[1])
    rng = np.random.default_rng(0)
    cases = [("overlay.mp4", VideoWriter, (480, 640, 3)), ("masks.mkv", MaskWriter, (480, 640))]
    for name, kind, shape in cases:
        path = folder / name
        writer = kind(path, 640, 480)
        failed = None
        try:
            for i in range(10):  # x264 holds these back: the disk fills while flushing
                writer.write(rng.integers(0, 256, shape, np.uint8), seconds=i / 30)
        except OSError:
            failed = "write"
        try:
            writer.close()
        except OSError:
            failed = failed or "close"
        held = any(f.endswith(name) for f in open_files())
        path.unlink()
        stat = os.statvfs(folder)
        used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize // 1024
        print(json.dumps({"file": name, "failed": failed, "held": held, "used_kb": used}),
              flush=True)


if __name__ == "__main__":
    main()
