"""Drawing masks and a status line over frames (uint8 RGB, numpy)."""

from __future__ import annotations

import cv2
import numpy as np

COLOUR = np.array([40, 230, 90], np.uint8)  # RGB green: rare in colonoscopy images


def draw_mask(frame: np.ndarray, mask: np.ndarray, alpha: float = 0.35) -> np.ndarray:
    """Tint the mask's pixels and outline each region; returns a new frame."""
    out = frame.copy()
    region = mask.astype(bool)
    out[region] = (out[region] * (1 - alpha) + COLOUR * alpha).astype(np.uint8)
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, tuple(int(c) for c in COLOUR), 2, cv2.LINE_AA)
    return out


def draw_status(frame: np.ndarray, text: str) -> np.ndarray:
    """One line of text on a dark band at the top."""
    out = frame.copy()
    scale = max(0.4, frame.shape[1] / 900)
    (_, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    out[: h + 10] = (out[: h + 10] * 0.4).astype(np.uint8)
    cv2.putText(out, text, (6, h + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out
