"""Masks drawn over frames (uint8 RGB numpy): a tinted fill, contours, a box and confidence
per polyp, and a heads-up display.

The analysis (``analyze``: connected regions, their boxes, areas, scores, contours) runs once
per mask, in the inference thread; ``draw`` runs once per displayed frame and only touches the
pixels inside the regions' boxes, so showing every frame of a 60 fps source stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

# RGB; green first because it is rare in colonoscopy images
PALETTE = np.array([[40, 230, 90], [255, 200, 40], [80, 160, 255], [255, 80, 200]], np.uint8)


@dataclass
class Region:
    box: tuple[int, int, int, int]   # x0, y0, x1, y1 in pixels, x1 and y1 exclusive
    area: int                        # pixels
    score: float                     # mean probability inside the region
    label: int = 1                   # class (1 for binary models)
    track: int | None = None         # polyp track id (``realtime.pipeline.tracks``)
    dwell: float | None = None       # seconds since its track was confirmed

    def as_dict(self) -> dict:
        return {"box": list(self.box), "area": self.area, "score": round(self.score, 4),
                "label": self.label, "track": self.track,
                "dwell": None if self.dwell is None else round(self.dwell, 3)}


@dataclass
class MaskLayer:
    """One mask, analysed and ready to draw over any frame of its size."""
    labels: np.ndarray               # H x W uint8: 0 background, k >= 1 class k
    regions: list[Region] = field(default_factory=list)
    contours: list = field(default_factory=list)
    box: tuple[int, int, int, int] | None = None   # union of the regions' boxes

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape


def analyze(mask: np.ndarray, probabilities: np.ndarray | None = None,
            min_area: int = 0) -> MaskLayer:
    """``mask``: bool (binary) or uint8 class indices, H x W. ``probabilities``: the
    foreground probability map (binary) for the regions' scores. Regions smaller than
    ``min_area`` pixels are left out of the layer altogether (not listed, not drawn): what is
    drawn is what is exported. ``mask`` itself is never changed."""
    labels = mask.astype(np.uint8, copy=False)
    layer = MaskLayer(labels)
    layer.box = _box(labels)
    if layer.box is None:
        return layer
    # Polyps cover a few percent of a frame: the rest is done inside their box (at 720p a
    # quarter of the time the whole frame took).
    x0, y0, x1, y1 = layer.box
    window = labels[y0:y1, x0:x1]
    dropped = np.zeros(window.shape, bool)
    for label in np.unique(window[window > 0]):
        component = (window == label).astype(np.uint8)
        count, ids, stats, _ = cv2.connectedComponentsWithStats(component, connectivity=8)
        if probabilities is not None:
            sums = np.bincount(ids.ravel(), weights=probabilities[y0:y1, x0:x1].ravel(),
                               minlength=count)
        for i in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[i])
            if area < min_area:
                small = ids == i
                component[small] = 0
                dropped |= small
                continue
            score = float(sums[i] / area) if probabilities is not None else 1.0
            layer.regions.append(Region((x0 + x, y0 + y, x0 + x + w, y0 + y + h), area, score,
                                        int(label)))
        contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE,
                                       offset=(x0, y0))
        layer.contours.extend((int(label), c) for c in contours)
    if dropped.any():
        layer.labels = labels.copy()
        layer.labels[y0:y1, x0:x1][dropped] = 0
        layer.box = _box(layer.labels)
    return layer


def _box(labels: np.ndarray) -> tuple[int, int, int, int] | None:
    """The smallest box [x0, y0, x1, y1) around the labelled pixels, or None."""
    rows = np.flatnonzero(labels.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(labels[rows[0]:rows[-1] + 1].any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


@dataclass
class OverlayStyle:
    alpha: float = 0.35     # fill opacity; 0 draws no fill
    contours: bool = True
    boxes: bool = True
    scores: bool = True


def draw(frame: np.ndarray, layer: MaskLayer | None, style: OverlayStyle = OverlayStyle()
         ) -> np.ndarray:
    """A new frame with the layer drawn over it (the frame itself is not changed)."""
    out = frame.copy()
    if layer is None or layer.box is None:
        return out
    if layer.shape != frame.shape[:2]:
        raise ValueError(f"mask is {layer.shape[1]}x{layer.shape[0]} but the frame is "
                         f"{frame.shape[1]}x{frame.shape[0]}")
    x0, y0, x1, y1 = layer.box
    if style.alpha > 0:
        roi, labels = out[y0:y1, x0:x1], layer.labels[y0:y1, x0:x1]
        inside = labels > 0
        colours = PALETTE[(labels[inside] - 1) % len(PALETTE)].astype(np.float32)
        roi[inside] = (roi[inside] * (1 - style.alpha) + colours * style.alpha + 0.5).astype(np.uint8)
    thickness = max(1, round(frame.shape[1] / 400))
    if style.contours:
        for label, contour in layer.contours:
            cv2.drawContours(out, [contour], -1, _colour(label), thickness, cv2.LINE_AA)
    scale = max(0.35, frame.shape[1] / 1600)
    for region in layer.regions:
        rx0, ry0, rx1, ry1 = region.box
        if style.boxes:
            cv2.rectangle(out, (rx0, ry0), (rx1 - 1, ry1 - 1), _colour(region.label), thickness)
        if style.scores:
            text = f"{region.score:.2f}"
            if region.track is not None:
                text = f"#{region.track} {text} {region.dwell:.1f}s"
            (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            ty = ry0 - 4 if ry0 - h - 6 >= 0 else min(ry1 + h + 4, frame.shape[0] - 2)
            cv2.rectangle(out, (rx0, ty - h - 3), (rx0 + w + 4, ty + 3), (0, 0, 0), -1)
            cv2.putText(out, text, (rx0 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        _colour(region.label), 1, cv2.LINE_AA)
    return out


def draw_hud(frame: np.ndarray, text: str) -> np.ndarray:
    """One status line on a darkened band at the top, in place; returns the frame."""
    scale = max(0.4, frame.shape[1] / 1400)
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    if w > frame.shape[1] - 12:  # small frames: shrink the text to fit the width
        scale *= (frame.shape[1] - 12) / w
        (_, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    band = frame[: h + 10]
    band[:] = band >> 2
    cv2.putText(frame, text, (6, h + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return frame


ALERT_COLOUR = (255, 190, 0)  # amber: apart from the masks' palette and from mucosa


def draw_alert_border(frame: np.ndarray) -> np.ndarray:
    """The alert indicator, in place: a coloured border around the whole picture, seen at the
    edge of vision while the eyes stay on the mucosa."""
    width = max(4, round(min(frame.shape[:2]) / 60))
    frame[:width], frame[-width:] = ALERT_COLOUR, ALERT_COLOUR
    frame[:, :width], frame[:, -width:] = ALERT_COLOUR, ALERT_COLOUR
    return frame


def _colour(label: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in PALETTE[(label - 1) % len(PALETTE)])
