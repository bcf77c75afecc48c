"""The offline outputs of one input, each a sink fed every frame in order:

- ``overlay.mp4``  H.264 yuv420p overlay at the input's own timestamps and time base
  (variable frame rates are kept; an odd width or height is padded by one pixel repeating the
  edge, since 4:2:0 needs even sizes - nothing is cropped).
- ``masks.mkv``    lossless gray masks (FFV1) at the exact input size, one per frame: binary
  0/255 or probabilities 0..255. Matroska keeps milliseconds; ``frames.jsonl`` the exact pts.
- ``frames.jsonl`` one line per frame: index, pts (time-base ticks), time (s), whether the
  timestamp was interpolated, polyp present (a region of at least the minimum area), the
  frame's highest probability (also below the threshold), regions (box [x0, y0, x1, y1) in
  pixels, area, score), the alert filter's state (``realtime.pipeline.alerts``), mask age
  (0: offline every frame has its own mask).
- ``events.jsonl`` one line per alert: first and last frame with a polyp (index, time),
  duration, peak score, masks with a polyp.
- optional ``masks/NNNNNN.png``, and ``coco.json`` + ``coco_results.json``
  (``realtime.io.coco``: every frame an image, the regions as annotations and as results).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from realtime.io.coco import CocoWriter
from realtime.io.results import FrameResult
from realtime.errors import SinkError
from realtime.io.sinks import Sink, close_all
from realtime.io.sources import Source
from realtime.io.writers import MaskWriter, VideoWriter, mask_to_gray

REQUIRED = ("overlay.mp4", "masks.mkv", "frames.jsonl", "events.jsonl", "summary.json")


class OverlayVideo(Sink):
    def __init__(self, path: Path, source: Source):
        self.writer = VideoWriter(path, source.width, source.height, rate=source.fps or 30.0,
                                  time_base=source.time_base)

    def write(self, result: FrameResult) -> None:
        self.writer.write(result.overlay, ticks=result.pts)

    def close(self) -> None:
        self.writer.close()


def _gray(result: FrameResult, probabilities: bool):
    binary = result.mask.dtype == bool
    return mask_to_gray(result.mask, result.probabilities if probabilities and binary else None)


class MaskVideo(Sink):
    def __init__(self, path: Path, source: Source, probabilities: bool):
        self.probabilities = probabilities
        self.writer = MaskWriter(path, source.width, source.height, rate=source.fps or 30.0,
                                 time_base=source.time_base)

    def write(self, result: FrameResult) -> None:
        self.writer.write(_gray(result, self.probabilities), ticks=result.pts)

    def close(self) -> None:
        self.writer.close()


class PngMasks(Sink):
    def __init__(self, folder: Path, probabilities: bool):
        self.folder, self.probabilities = folder, probabilities
        folder.mkdir()

    def write(self, result: FrameResult) -> None:
        path = self.folder / f"{result.index:06d}.png"
        ok, data = cv2.imencode(".png", _gray(result, self.probabilities))
        if not ok:
            raise SinkError(f"{path}: PNG encoding failed")
        path.write_bytes(data.tobytes())  # an OSError (a full disk) is raised, not ignored


class FrameLog(Sink):
    def __init__(self, path: Path):
        self.file = open(path, "w")

    def write(self, result: FrameResult) -> None:
        top = result.max_probability
        record = {"index": result.index, "pts": result.pts, "time": round(result.time, 6),
                  "pts_interpolated": result.frame.interpolated, "polyp": result.polyp,
                  "max_probability": None if top is None else round(top, 6),
                  "alert": result.alert.on if result.alert else None,
                  "alert_status": result.alert.status if result.alert else None,
                  "regions": [r.as_dict() for r in result.regions], "mask_age": 0}
        self.file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self.file.close()


class Coco(Sink):
    def __init__(self, path: Path, video: str, source: Source):
        self.writer = CocoWriter(path, video, source.width, source.height)

    def write(self, result: FrameResult) -> None:
        self.writer.add(result.index, result.time, result.mask, result.regions)

    def close(self) -> None:
        self.writer.close()


def offline_sinks(folder: Path, name: str, source: Source, mask_values: str = "binary",
                  png_masks: bool = False, coco: bool = False) -> list[Sink]:
    """Every output of one input in ``folder``, in the order they are written."""
    probabilities = mask_values == "probabilities"
    makers = [lambda: OverlayVideo(folder / "overlay.mp4", source),
              lambda: MaskVideo(folder / "masks.mkv", source, probabilities),
              lambda: FrameLog(folder / "frames.jsonl")]
    if png_masks:
        makers.append(lambda: PngMasks(folder / "masks", probabilities))
    if coco:
        makers.append(lambda: Coco(folder / "coco.json", name, source))
    sinks: list[Sink] = []
    try:
        for make in makers:
            sinks.append(make())
    except BaseException:
        close_all(sinks, report=False)
        raise
    return sinks


def is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in REQUIRED)
