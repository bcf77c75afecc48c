"""The notice for slow one-off steps (tracing, engine builds, compiling): elapsed time while
it runs, counted in place on a terminal, and the last run's duration as the next estimate."""

from __future__ import annotations

import logging
import os
import threading

import pytest

from realtime.engine import slow_step as module
from realtime.engine.slow_step import last_duration, slow_step


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("M2SNET_CACHE", str(tmp_path))
    return tmp_path


def test_logs_while_running_and_remembers_how_long_it_took(cache, caplog):
    proceed = threading.Event()
    with caplog.at_level(logging.INFO, logger="realtime.engine"):
        with slow_step("tracing the net", key="net 64", interval=0.02):
            # causal, not timed: the block ends only after the notice said it is running
            for _ in range(500):
                if sum("still running" in r.message for r in caplog.records) >= 2:
                    proceed.set()
                    break
                proceed.wait(0.02)
    assert proceed.is_set()
    messages = [r.message for r in caplog.records]
    assert messages[0] == "tracing the net (usually 10-60 s)..."
    assert messages[1].startswith("tracing the net: still running, 0 s so far (usually")
    took = last_duration("net 64")
    assert took is not None and took >= 0
    assert (cache / module.TIMINGS).is_file()

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="realtime.engine"):
        with slow_step("tracing the net", key="net 64", interval=60):
            pass
    assert caplog.records[0].message == f"tracing the net (last time {took:.0f} s)..."
    assert last_duration("other") is None


def test_counts_in_place_on_a_terminal_and_clears_the_line(cache):
    leader, follower = os.openpty()
    terminal = os.fdopen(follower, "w")
    try:
        with slow_step("building", key="engine", usually="minutes", tick=0.05,
                       stream=terminal):
            threading.Event().wait(0.3)
        terminal.flush()
        written = os.read(leader, 65536).decode()
    finally:
        terminal.close()
        os.close(leader)
    assert "\rbuilding: 0 s (usually minutes)" in written
    assert written.endswith("\r\x1b[K")


def test_a_damaged_timings_file_is_only_a_missing_estimate(cache):
    (cache / module.TIMINGS).write_text("[not json")
    assert last_duration("net") is None
    with slow_step("x", key="net", interval=60):
        pass
    assert last_duration("net") is not None
