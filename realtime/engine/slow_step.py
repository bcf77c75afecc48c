"""A notice for slow one-off work (tracing a network, building an engine, compiling): how long
it has been running, and how long the same step took the last time it ran on this machine, so
that a first start of 10-60 s does not look like a hang.

On a terminal the elapsed time counts up in place on stderr; elsewhere (logs, the web app's
console) a line every ``interval`` seconds says it is still running."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from typing import Iterator

from realtime.engine import cache

log = logging.getLogger("realtime.engine")

TIMINGS = "slow_steps.json"  # in the cache root: {step key: seconds it took last time}


def _timings_file():
    return cache.cache_root() / TIMINGS


def last_duration(key: str) -> float | None:
    try:
        value = json.loads(_timings_file().read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def _remember(key: str, seconds: float) -> None:
    from m2snet.files import write_json
    try:
        timings = json.loads(_timings_file().read_text())
        if not isinstance(timings, dict):
            timings = {}
    except (OSError, ValueError):
        timings = {}
    timings[key] = round(seconds, 1)
    with contextlib.suppress(OSError):  # only an estimate for next time
        _timings_file().parent.mkdir(parents=True, exist_ok=True)
        write_json(_timings_file(), timings)


@contextlib.contextmanager
def slow_step(what: str, key: str, usually: str = "10-60 s", interval: float = 10.0,
              tick: float = 1.0, stream=None) -> Iterator[None]:
    """Announce ``what`` (e.g. "openvino: tracing the network"), report progress while the
    block runs, and remember how long it took under ``key`` for the next start's estimate."""
    previous = last_duration(key)
    expected = f"last time {previous:.0f} s" if previous is not None else f"usually {usually}"
    log.info("%s (%s)...", what, expected)
    stream = stream or sys.stderr
    on_terminal = getattr(stream, "isatty", lambda: False)()
    done = threading.Event()
    began = time.perf_counter()

    def report() -> None:
        counted = False
        while not done.wait(tick if on_terminal else interval):
            elapsed = time.perf_counter() - began
            if on_terminal:
                stream.write(f"\r{what}: {elapsed:.0f} s ({expected})")
                stream.flush()
                counted = True
            else:
                log.info("%s: still running, %.0f s so far (%s)", what, elapsed, expected)
        if counted:
            stream.write("\r\x1b[K")  # clear the counter; the result line follows
            stream.flush()

    reporter = threading.Thread(target=report, daemon=True, name="slow-step")
    reporter.start()
    try:
        yield
    finally:
        done.set()
        reporter.join()
    _remember(key, time.perf_counter() - began)
