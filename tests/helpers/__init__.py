"""Helpers shared by the tests (import them from here, not from conftest)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository


def unprivileged() -> list[str]:
    """A command prefix under which permission bits hold: root keeps its user id (it can still
    run this Python, under /root) but loses the capabilities that override file modes."""
    import os
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
