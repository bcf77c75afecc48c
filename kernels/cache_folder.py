"""The one folder under which everything this project compiles is kept between starts."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$M2SNET_CACHE, else ~/.cache/m2snet-rt (XDG_CACHE_HOME respected)."""
    base = os.environ.get("M2SNET_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "m2snet-rt")
    return Path(base)
