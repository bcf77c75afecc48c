"""Frames that calibrate an INT8 network: post-training quantization measures each layer's
activation range on them, so they should look like what the network will later see.

The default is a phantom procedure (``phantom``): polyp-free stretches, polyps entering and
leaving, and the artefacts (bright and dark rims, bubbles, blur, glare) whose extreme values
would otherwise fall outside the measured ranges. A video file or an image folder (the
user's own recordings) can be given instead; frames are then taken evenly over its length.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from realtime.errors import SourceError

DEFAULT_SOURCE = "phantom"
DEFAULT_FRAMES = 64
PHANTOM_SEED = 8000     # no test, benchmark or training set draws procedures from it
PHANTOM_STRIDE = 8      # every 8th frame: neighbouring frames add little
MIN_SECONDS = 7.0       # the shortest procedure Procedure makes


class CalibrationSet:
    """The int8 calibration set, made only when a quantization needs it (a cached int8
    network does not)."""

    def __init__(self, source: str | None, count: int | None, size: int, normalization):
        self.source, self.size, self.normalization = source, size, normalization
        self.count = count or DEFAULT_FRAMES
        self.name = Path(source).name if source else DEFAULT_SOURCE  # for notices
        self.key = identity(source) if source else DEFAULT_SOURCE      # for cache keys
        if self.count != DEFAULT_FRAMES:
            self.key += f"-{self.count}"

    def __call__(self):
        return inputs(self.source, self.count, self.size, self.normalization)


def identity(source: str | None) -> str:
    """A short label for cache keys: ``phantom``, or a hash of the file's (or folder's) name,
    size and modification time, so another calibration set quantizes anew."""
    if source in (None, DEFAULT_SOURCE):
        return DEFAULT_SOURCE
    path = Path(source)
    if not path.exists():
        raise SourceError(f"{source}: no such calibration video or image folder")
    entries = sorted(path.iterdir()) if path.is_dir() else [path]
    stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in entries if p.is_file()]
    return hashlib.sha256(repr((str(path.resolve()), stamp)).encode()).hexdigest()[:8]


def frames(source: str | None, count: int = DEFAULT_FRAMES, size: int = 352) -> list[np.ndarray]:
    """``count`` RGB frames (H x W x 3 uint8) from the source; SourceError when it has none."""
    if count < 1:
        raise ValueError(f"the calibration needs at least one frame, got {count}")
    if source in (None, DEFAULT_SOURCE):
        return _phantom(count, size)
    if not Path(source).exists():
        raise SourceError(f"{source}: no such calibration video or image folder")
    return _recorded(source, count)


def inputs(source: str | None, count: int, size: int, normalization) -> Iterator[torch.Tensor]:
    """The calibration frames as the network sees them: 1 x 3 x size x size, normalized."""
    from m2snet.preprocess import resize_normalize
    for image in frames(source, count, size):
        batch = torch.from_numpy(np.ascontiguousarray(image))[None]
        yield resize_normalize(batch, size, normalization, torch.float32)


def _phantom(count: int, size: int) -> list[np.ndarray]:
    from m2snet.phantom_procedure import Procedure
    fps = 30.0
    seconds = max(MIN_SECONDS, count * PHANTOM_STRIDE / fps + 1)
    procedure = Procedure(PHANTOM_SEED, seconds=seconds, fps=fps,
                          size=size)
    chosen = []
    for index, image, _ in procedure.frames():
        if index % PHANTOM_STRIDE == 0:
            chosen.append(image)
            if len(chosen) == count:
                break
    return chosen


def _recorded(source: str, count: int) -> list[np.ndarray]:
    """Frames spread evenly over the video (its declared length), or the first ``count`` when
    the length is unknown."""
    from realtime.io.sources import open_source
    opened = open_source(source)
    try:
        total = opened.frame_count
        stride = max(1, total // count) if total else 1
        chosen = []
        while len(chosen) < count:
            frame = opened.read()
            if frame is None:
                break
            if frame.index % stride == 0:
                chosen.append(frame.image)
    finally:
        opened.close()
    if not chosen:
        raise SourceError(f"{source}: no decodable frame to calibrate on")
    return chosen
