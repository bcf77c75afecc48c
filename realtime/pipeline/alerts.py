"""The alert a detection aid raises: a temporal filter over per-mask decisions, configured
once and used by live and offline alike.

A raw per-frame decision flickers (a bright rim flagged for a frame, a polyp missed for one);
what a clinician sees is the alert. It is raised once ``raise_after`` of the last ``window``
masks found a polyp, or at once when ``sure_masks`` masks in a row show a region whose mean
probability is at least ``sure_score`` (the glare, bubbles and rims that cause false alerts
are seldom that sure twice running, and a polyp the network is sure of should not wait for the
window to fill), and held until ``hold`` masks in a row found none. Offline every frame has its
own mask; live the filter advances only when a new mask arrives (a mask shown again on the
next frames is not new evidence).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AlertSettings:
    raise_after: int = 7   # masks with a polyp ...
    window: int = 8        # ... among the last this many raise the alert
    hold: int = 3          # masks in a row without one before it is lowered
    sure_score: float | None = 0.85  # a region this sure ... (None: only the window raises)
    sure_masks: int = 2             # ... in this many masks in a row raises it at once

    def __post_init__(self):
        if not 1 <= self.raise_after <= self.window:
            raise ValueError(f"an alert needs 1 <= raise_after <= window, got "
                             f"{self.raise_after} of {self.window}")
        if self.hold < 1:
            raise ValueError(f"hold must be at least 1 mask, got {self.hold}")
        if self.sure_score is not None and not (0 < self.sure_score <= 1 and self.sure_masks >= 1):
            raise ValueError(f"a sure raise needs a score in (0, 1] and at least 1 mask, got "
                             f"{self.sure_score}/{self.sure_masks}")

    @property
    def rule(self) -> str:
        return f"{self.raise_after}/{self.window}"

    @property
    def sure(self) -> str:
        return "off" if self.sure_score is None else f"{self.sure_score:g}/{self.sure_masks}"

    @classmethod
    def parse(cls, text: str, hold: int, sure: str | None = None) -> "AlertSettings":
        """'K/N' (K of the last N masks), the hold, and 'P/M' (a region of mean probability
        at least P in M masks in a row) or 'off' (None: the default sure raise)."""
        try:
            k, n = (int(v) for v in text.split("/"))
        except ValueError:
            raise ValueError(f"--alert takes K/N (raise when K of the last N masks show a "
                             f"polyp), got {text!r}") from None
        if sure is None:
            return cls(k, n, hold)
        if sure == "off":
            return cls(k, n, hold, None)
        try:
            score, masks = sure.split("/")
            score, masks = float(score), int(masks)
        except ValueError:
            raise ValueError(f"--alert-sure takes P/M (raise at once when M masks in a row "
                             f"show a region of mean probability >= P) or off, got "
                             f"{sure!r}") from None
        return cls(k, n, hold, score, masks)


@dataclass
class AlertState:
    on: bool
    status: str        # "off", "suppressed" (a polyp, not yet enough), "raised", "holding"
    track: int | None = None     # the track of the mask's best region, if confirmed
    dwell: float | None = None   # and how long it has been seen (s)

    @property
    def label(self) -> str:
        """What the status line says ("" when there is nothing to say)."""
        text = {"raised": "ALERT", "holding": "ALERT (held)",
                "suppressed": "polyp? (alert not yet raised)"}.get(self.status, "")
        if text and self.track is not None:
            text += f" #{self.track} {self.dwell:.1f}s"
        return text


@dataclass
class AlertEvent:
    start_index: int
    start_time: float
    start_pts: int | None = None
    end_index: int = -1
    end_time: float = 0.0
    end_pts: int | None = None
    peak_score: float = 0.0
    masks_with_polyp: int = 0
    tracks: list[int] = field(default_factory=list)  # the tracks it showed, in order

    def as_dict(self) -> dict:
        start, end = round(self.start_time, 6), round(self.end_time, 6)
        return {"start_index": self.start_index, "start_pts": self.start_pts,
                "start_time": start, "end_index": self.end_index, "end_pts": self.end_pts,
                "end_time": end, "duration": round(end - start, 6),
                "peak_score": round(self.peak_score, 4),
                "masks_with_polyp": self.masks_with_polyp, "tracks": self.tracks}


class AlertFilter:
    def __init__(self, settings: AlertSettings | None = None):
        self.settings = settings or AlertSettings()
        self._recent: deque[bool] = deque(maxlen=self.settings.window)
        self._sure_run = 0  # masks in a row with a region of at least sure_score
        self._misses = 0
        self.event: AlertEvent | None = None    # the alert that is on, if any
        self.finished: list[AlertEvent] = []    # alerts that have ended

    def observe(self, result) -> AlertState:
        """A frame's new mask (a ``FrameResult``, its regions' tracks already assigned):
        its decision, best region and frame."""
        best = max(result.regions, key=lambda r: r.score, default=None)
        state = self.update(result.polyp, best.score if best else 0.0, result.index,
                            result.time, result.pts,
                            [r.track for r in result.regions if r.track is not None])
        if best is not None and best.track is not None:
            state.track, state.dwell = best.track, best.dwell
        return state

    def update(self, polyp: bool, score: float, index: int, time: float,
               pts: int | None = None, tracks: list[int] = ()) -> AlertState:
        """One new mask: whether it found a polyp, its highest region score, its frame, and
        the tracks it shows."""
        self._recent.append(polyp)
        sure = self.settings.sure_score
        self._sure_run = self._sure_run + 1 if polyp and sure is not None and score >= sure else 0
        if self.event is None:
            if (sum(self._recent) < self.settings.raise_after
                    and (sure is None or self._sure_run < self.settings.sure_masks)):
                return AlertState(False, "suppressed" if polyp else "off")
            self.event = AlertEvent(index, time, pts)
            self._misses = 0
        event = self.event
        if polyp:
            self._misses = 0
            event.peak_score = max(event.peak_score, score)
            event.masks_with_polyp += 1
            event.end_index, event.end_time, event.end_pts = index, time, pts
            event.tracks.extend(t for t in tracks if t not in event.tracks)
            return AlertState(True, "raised")
        self._misses += 1
        if self._misses >= self.settings.hold:
            self.finished.append(event)
            self.event = None
            self._recent.clear()
            return AlertState(False, "off")
        return AlertState(True, "holding")

    def close(self) -> list[AlertEvent]:
        """Every alert of the run, one still on at the end included (ending at its last
        frame with a polyp)."""
        if self.event is not None:
            self.finished.append(self.event)
            self.event = None
        return self.finished
