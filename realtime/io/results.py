"""What the pipeline hands to sinks and to ``realtime.stream()``: one frame with its mask.

The overlay is drawn when a sink first asks for it and then shared by every sink (a window,
a recording and a web stream of one frame draw it once). What is drawn is what is exported:
the regions listed in logs and COCO are the ones the overlay boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from realtime.io.overlay import MaskLayer, OverlayStyle, Region, draw, draw_alert_border, draw_hud
from realtime.io.sources import SourceFrame

if TYPE_CHECKING:
    from realtime.pipeline.alerts import AlertState


@dataclass(eq=False)
class FrameResult:
    frame: SourceFrame
    probabilities: np.ndarray | None  # binary: H x W float32; multi-class: K x H x W; None: no mask yet
    mask: np.ndarray | None           # binary: H x W bool; multi-class: H x W uint8 class index
    layer: MaskLayer | None           # the mask's regions and contours, ready to draw
    mask_index: int | None            # the frame the mask was computed on (live: may be older)
    captured: float = 0.0             # perf_counter when the frame was captured
    seconds: float = 0.0              # capture time since the run started
    mask_captured: float | None = None  # perf_counter when the mask's frame was captured
    style: OverlayStyle = field(default_factory=OverlayStyle)
    hud: str = ""
    alert: AlertState | None = None   # the alert filter's state at this frame (None: no filter)
    peak: float | None = None         # the highest probability, where the map itself is not kept
    _overlay: np.ndarray | None = field(default=None, repr=False)
    _composite: np.ndarray | None = field(default=None, repr=False)

    @property
    def index(self) -> int:
        return self.frame.index

    @property
    def pts(self) -> int:
        return self.frame.pts

    @property
    def time_base(self) -> Fraction:
        return self.frame.time_base

    @property
    def time(self) -> float:
        return self.frame.time

    @property
    def image(self) -> np.ndarray:
        return self.frame.image

    raw = image  # the frame as captured, beside ``overlay``

    @property
    def regions(self) -> list[Region]:
        return self.layer.regions if self.layer is not None else []

    @property
    def polyp(self) -> bool:
        """A polyp was found: a region at least the minimum area (what is drawn and
        exported); without an analysed layer, any mask pixel."""
        if self.layer is not None:
            return bool(self.layer.regions)
        return self.mask is not None and bool(self.mask.any())

    @property
    def max_probability(self) -> float | None:
        """The frame's highest polyp probability, also below the threshold (for curves such
        as AFROC); multi-class: the highest probability of any class but background."""
        if self.probabilities is None:
            return self.peak
        p = self.probabilities
        return float(p.max() if p.ndim == 2 else (1 - p[0]).max())

    @property
    def overlay(self) -> np.ndarray:
        """The frame with its mask drawn over it (drawn once)."""
        if self._overlay is None:
            layer = self.layer
            if layer is not None and layer.shape != self.image.shape[:2]:
                layer = None  # the source changed size: no mask until one of the new size
            self._overlay = draw(self.image, layer, self.style)
            if self.alert is not None and self.alert.on:
                draw_alert_border(self._overlay)
        return self._overlay

    @property
    def composite(self) -> np.ndarray:
        """The overlay with the status line (made once, shared by all sinks)."""
        if self._composite is None:
            self._composite = draw_hud(self.overlay.copy(), self.hud) if self.hud else self.overlay
        return self._composite
