"""Counters and timings of a pipeline run, bounded in memory (hours of frames keep the newest
samples only), readable from any thread while the run goes on."""

from __future__ import annotations

import collections
import threading
import time

import numpy as np

KEEP = 20_000  # newest samples kept per measurement: ~11 minutes at 30 fps


class Samples:
    def __init__(self):
        self.values: collections.deque[float] = collections.deque(maxlen=KEEP)
        self.count, self.max, self.total = 0, 0.0, 0.0

    def add(self, value: float) -> None:
        self.values.append(value)
        self.count += 1
        self.max = max(self.max, value)
        self.total += value

    def percentiles(self, *qs: float) -> list[float | None]:
        if not self.values:
            return [None] * len(qs)
        return [float(v) for v in np.percentile(np.fromiter(self.values, float), qs)]

    def last(self) -> float | None:
        return self.values[-1] if self.values else None


class Rate:
    """Events per second over the last ``window`` seconds; None until the events seen span
    at least ``settle`` seconds (a rate over a few frames' jitter reads 34 for a 30 fps
    source)."""

    def __init__(self, window: float = 2.0, settle: float = 1.0):
        self.times: collections.deque[float] = collections.deque(maxlen=512)
        self.window, self.settle = window, settle

    def tick(self, now: float) -> None:
        self.times.append(now)

    def value(self, now: float) -> float | None:
        recent = [t for t in self.times if now - t <= self.window]
        if len(recent) < 2 or recent[-1] - recent[0] < self.settle:
            return None
        return (len(recent) - 1) / (recent[-1] - recent[0])


class PipelineStats:
    STAGES = ("capture", "infer", "analyze", "draw", "sink")

    def __init__(self):
        self.start = time.perf_counter()
        self.lock = threading.Lock()
        self.captured = self.processed = self.displayed = 0
        self.latency = Samples()     # capture -> the sinks had the frame, seconds
        self.mask_age = Samples()    # displayed frame's capture - its mask frame's capture
        self.stages = {name: Samples() for name in self.STAGES}
        self.rates = {name: Rate() for name in ("captured", "processed", "displayed")}

    def count(self, what: str, now: float) -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)
            self.rates[what].tick(now)

    def stage(self, name: str, seconds: float) -> None:
        self.stages[name].add(seconds)

    def busy(self, name: str) -> float:
        """Seconds the stage spent working, all samples counted."""
        return self.stages[name].total

    def hud(self, backend: str) -> str:
        now = time.perf_counter()
        r = {k: rate.value(now) for k, rate in self.rates.items()}
        latency, age = self.latency.last(), self.mask_age.last()
        return (f"{backend} | source {_rate(r['captured'], 0)} fps | shown "
                f"{_rate(r['displayed'], 0)} | model {_rate(r['processed'], 1)} | latency "
                f"{_ms(latency)} | mask age {_ms(age)}")

    def summary(self, dropped: int, not_displayed: int, extra: dict | None = None) -> dict:
        elapsed = time.perf_counter() - self.start
        p50, p95, p99 = self.latency.percentiles(50, 95, 99)
        a50, a99 = self.mask_age.percentiles(50, 99)

        def per(n: int) -> float:
            return n / elapsed if elapsed > 0 else 0.0

        return {
            "seconds": round(elapsed, 3),
            "frames_captured": self.captured,
            "frames_processed": self.processed,
            "frames_displayed": self.displayed,
            "frames_dropped": dropped,
            "frames_not_displayed": not_displayed,
            "fps": {"capture": per(self.captured), "processed": per(self.processed),
                    "displayed": per(self.displayed)},
            "latency_ms": {"p50": _x1000(p50), "p95": _x1000(p95), "p99": _x1000(p99),
                           "max": _x1000(self.latency.max if self.latency.count else None)},
            "mask_age_ms": {"p50": _x1000(a50), "p99": _x1000(a99)},
            "stage_ms_median": {name: _x1000(s.percentiles(50)[0])
                                for name, s in self.stages.items()},
            **(extra or {}),
        }


def format_summary(s: dict) -> str:
    fps, lat, age = s["fps"], s["latency_ms"], s["mask_age_ms"]
    # the words of the JSON summary's keys
    lines = [
        f"frames: {s['frames_captured']} captured, {s['frames_processed']} processed "
        f"(segmented), {s['frames_displayed']} displayed, {s['frames_dropped']} dropped (not "
        f"segmented, to stay live), {s['frames_not_displayed']} not displayed",
        f"fps: capture {fps['capture']:.1f}, displayed {fps['displayed']:.1f}, "
        f"processed {fps['processed']:.1f} over {s['seconds']:.1f} s",
        f"latency capture->sink ms: p50 {_f(lat['p50'])}, p95 {_f(lat['p95'])}, "
        f"p99 {_f(lat['p99'])}, max {_f(lat['max'])}; mask age ms: p50 {_f(age['p50'])}, "
        f"p99 {_f(age['p99'])}",
        "stage medians ms: " + ", ".join(f"{k} {_f(v)}" for k, v in s["stage_ms_median"].items()),
    ]
    return "\n".join(lines)


def _rate(value: float | None, decimals: int) -> str:
    return "--" if value is None else f"{value:.{decimals}f}"


def _ms(seconds: float | None) -> str:
    return "-- ms" if seconds is None else f"{seconds * 1e3:.0f} ms"


def _x1000(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 3)


def _f(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.1f}"
