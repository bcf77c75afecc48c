"""What every benchmark records about the machine it ran on."""

from __future__ import annotations

import json
from pathlib import Path

from realtime.bench import cpu_name  # noqa: F401  (the scripts take it from here)


def write_json(path: Path | None, result: dict) -> None:
    """Write a result file if asked to (``--json``), creating its folder."""
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
