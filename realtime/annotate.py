"""Offline annotation: every frame of recorded procedures, in order, with exact masks.

For each input (a video file or an image folder/glob) the outputs go to ``OUT/<stem>/``:

- ``overlay.mp4``  H.264 yuv420p overlay of every decoded frame at the input's own timestamps
  (same time base, so variable frame rates are kept); an odd width or height is padded by one
  pixel repeating the last column or row (4:2:0 needs even sizes; nothing is cropped).
- ``masks.mkv``    lossless gray masks (FFV1) at the exact input size, one per frame: binary
  0/255 (default) or probabilities 0..255 (``mask_values="probabilities"``). Matroska keeps
  timestamps in milliseconds; ``frames.jsonl`` has the exact ones.
- ``frames.jsonl`` one line per frame: index, pts (input time base ticks), time (s), whether
  the timestamp was interpolated, polyp present, regions (box, area, score), mask age (0).
- ``summary.json`` what went in, what came out, the model, the settings and the timings.
- optional ``masks/NNNNNN.png`` and ``coco.json`` (RLE segmentations of positive frames).

Decoding, inference (batched) and writing run in three threads joined by bounded queues, so the
slowest stage sets the pace. Everything is written to ``OUT/.<stem>.partial/`` and renamed into
place when complete: a folder named after an input is always a finished result.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from realtime.coco import CocoWriter
from realtime.decode import SourceError, VideoDecoder
from realtime.overlay import OverlayStyle, analyze, draw
from realtime.sources import IMAGE_SUFFIXES, list_images
from realtime.video_io import MaskWriter, VideoWriter

log = logging.getLogger("realtime.annotate")

OUTPUTS = ("overlay.mp4", "masks.mkv", "frames.jsonl", "summary.json")


@dataclass
class InputSpec:
    source: str          # what the user named (a file, a folder, a glob)
    stem: str            # the output folder's name
    kind: str            # "video" or "images"


@dataclass
class AnnotateOptions:
    batch: int = 1
    mask_values: str = "binary"          # or "probabilities"
    png_masks: bool = False
    coco: bool = False
    image_fps: float = 30.0              # timestamps given to image sequences
    style: OverlayStyle = field(default_factory=OverlayStyle)
    min_area: int = 64
    progress: bool = True


@dataclass
class Decoded:
    index: int
    image: np.ndarray
    pts: int             # ticks of the input's time base
    time: float          # seconds
    interpolated: bool   # the input had no timestamp for this frame


def expand_inputs(names: list[str]) -> list[InputSpec | SourceError]:
    """Each name -> inputs: a video file; an image folder (one input); a glob that matches
    images (one input: the sequence) or videos (one input each). Names that match nothing
    come back as errors, in order, so the other inputs still run."""
    found: list[InputSpec | SourceError] = []
    for name in names:
        path = Path(name)
        if any(c in name for c in "*?[") and not path.exists():
            matches = sorted(Path(m) for m in glob.glob(name) if Path(m).is_file())
            if not matches:
                found.append(SourceError(f"{name}: matches no file"))
            elif all(m.suffix.lower() in IMAGE_SUFFIXES for m in matches):
                found.append(InputSpec(name, matches[0].parent.name or "images", "images"))
            else:
                found.extend(InputSpec(str(m), m.stem, "video") for m in matches
                             if m.suffix.lower() not in IMAGE_SUFFIXES)
        elif path.is_dir():
            found.append(InputSpec(name, path.resolve().name, "images"))
        else:
            found.append(InputSpec(name, path.stem, "video"))
    seen: dict[str, int] = {}
    for spec in found:  # two inputs called clip.mp4 in different folders: clip, clip_2
        if isinstance(spec, InputSpec):
            seen[spec.stem] = seen.get(spec.stem, 0) + 1
            if seen[spec.stem] > 1:
                spec.stem = f"{spec.stem}_{seen[spec.stem]}"
    return found


class FrameReader:
    """Frames of one input with exact timestamps; missing ones are interpolated (flagged)."""

    def __init__(self, spec: InputSpec, image_fps: float):
        self.spec, self.damaged, self.skipped = spec, 0, 0
        if spec.kind == "video":
            if not Path(spec.source).exists():
                raise SourceError(f"{spec.source}: no such file")
            self.decoder = VideoDecoder(spec.source)
            self.time_base = self.decoder.time_base or Fraction(1, 90000)
            self.fps = self.decoder.fps or 30.0
            self.frame_count = self.decoder.frame_count
            self.width, self.height = self.decoder.size
        else:
            self.paths = list_images(spec.source)
            if not self.paths:
                raise SourceError(f"{spec.source}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            first = cv2.imread(str(self.paths[0]), cv2.IMREAD_UNCHANGED)
            if first is None:
                raise SourceError(f"{self.paths[0]}: not a readable image")
            self.height, self.width = first.shape[:2]
            self.fps, self.time_base = image_fps, Fraction(1, 1000)
            self.frame_count = len(self.paths)

    def _raw(self) -> Iterator[tuple[np.ndarray, int | None]]:
        if self.spec.kind == "video":
            for image, _, pts in self.decoder.frames():
                self.damaged = self.decoder.damaged
                yield image, pts
            self.damaged = self.decoder.damaged
            return
        for i, path in enumerate(self.paths):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape[:2] != (self.height, self.width):
                self.skipped += 1
                log.warning("%s: %s, skipped", path, "not a readable image" if bgr is None else
                            f"size differs from the first image ({self.width}x{self.height})")
                continue
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), round(i / self.fps / self.time_base)

    def __iter__(self) -> Iterator[Decoded]:
        step = max(1, round(1 / (self.fps * self.time_base)))
        last = None
        for index, (image, pts) in enumerate(self._raw()):
            interpolated = pts is None
            if interpolated:
                pts = 0 if last is None else last + step
            last = pts
            yield Decoded(index, image, pts, float(pts * self.time_base), interpolated)

    def close(self) -> None:
        if self.spec.kind == "video":
            self.decoder.close()


class _Stage(threading.Thread):
    """A pipeline thread whose failure is kept for the main thread to raise."""

    def __init__(self, name: str, target, stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self._target_fn, self.stop, self.error = target, stop, None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as error:  # noqa: BLE001
            self.error = error
            self.stop.set()


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event):
    while not stop.is_set():
        try:
            return q.get(timeout=0.2)
        except queue.Empty:
            continue
    return None


END = object()


def annotate_one(spec: InputSpec, segmenter, out_dir: Path, options: AnnotateOptions) -> dict:
    """Annotate one input into ``out_dir/<stem>/``; returns its summary. On any failure or
    interruption nothing of this input is left in ``out_dir``."""
    final = out_dir / spec.stem
    partial = out_dir / f".{spec.stem}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    reader = FrameReader(spec, options.image_fps)
    partial.mkdir(parents=True)
    try:
        summary = _run_stages(spec, reader, segmenter, partial, options)
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        summary["output"] = str(final)
        return summary
    finally:
        reader.close()
        shutil.rmtree(partial, ignore_errors=True)


def _run_stages(spec: InputSpec, reader: FrameReader, segmenter, folder: Path,
                options: AnnotateOptions) -> dict:
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(maxsize=2 * options.batch + 2)
    inferred: queue.Queue = queue.Queue(maxsize=2 * options.batch + 2)
    timings = {"decode_s": 0.0, "infer_s": 0.0, "write_s": 0.0}
    binary = getattr(segmenter, "num_classes", 1) == 1

    def decode() -> None:
        frames = iter(reader)
        while not stop.is_set():
            t = time.perf_counter()
            item = next(frames, END)
            timings["decode_s"] += time.perf_counter() - t
            if not _put(decoded, item, stop) or item is END:
                return

    def infer() -> None:
        done = False
        while not done and not stop.is_set():
            batch = []
            while len(batch) < options.batch:
                item = _get(decoded, stop)
                if item is None:
                    return
                if item is END:
                    done = True
                    break
                batch.append(item)
            if batch:
                t = time.perf_counter()
                # a short last batch is padded to the full size: compiled backends are built
                # for one shape, and a new shape would mean compiling again
                images = [f.image for f in batch]
                images += [images[-1]] * (options.batch - len(images))
                probabilities, masks = segmenter(images).numpy()
                timings["infer_s"] += time.perf_counter() - t
                for i, frame in enumerate(batch):
                    if not _put(inferred, (frame, probabilities[i], masks[i]), stop):
                        return
        _put(inferred, END, stop)

    stages = [_Stage("decode", decode, stop), _Stage("infer", infer, stop)]
    for stage in stages:
        stage.start()
    started, wall = time.strftime("%Y-%m-%dT%H:%M:%S%z"), time.perf_counter()
    writer = _Outputs(folder, reader, options, binary)
    progress = _progress(spec, reader, options)
    try:
        while True:
            item = _get(inferred, stop)
            if item is None or item is END:
                break
            t = time.perf_counter()
            writer.add(*item)
            timings["write_s"] += time.perf_counter() - t
            progress.update(1)
    finally:
        stop.set()  # after the end marker the stages are done; after a failure they stop
        progress.close()
        for stage in stages:
            stage.join(timeout=30)
        writer.close()
    for stage in stages:
        if stage.error is not None:
            if isinstance(stage.error, (SourceError, KeyboardInterrupt)):
                raise stage.error
            raise RuntimeError(f"{spec.source}: {stage.name} failed: "
                               f"{type(stage.error).__name__}: {stage.error}") from stage.error
    wall = time.perf_counter() - wall
    if writer.frames == 0:
        raise SourceError(f"{spec.source}: no decodable frame")
    summary = {
        "input": spec.source, "kind": spec.kind, "frames": writer.frames,
        "width": reader.width, "height": reader.height,
        "time_base": str(reader.time_base), "nominal_fps": reader.fps,
        "first_time": writer.first_time, "last_time": writer.last_time,
        "damaged_packets_skipped": reader.damaged, "unreadable_images_skipped": reader.skipped,
        "interpolated_timestamps": writer.interpolated, "frames_with_polyp": writer.positive,
        "model": {"weights": str(segmenter.weights), "backend": segmenter.runner.description,
                  "input_size": segmenter.size, "threshold": segmenter.threshold},
        "settings": {"batch": options.batch, "mask_values": options.mask_values,
                     "png_masks": options.png_masks, "coco": options.coco,
                     "min_area": options.min_area, "overlay_alpha": options.style.alpha},
        "timings": {**{k: round(v, 3) for k, v in timings.items()}, "wall_s": round(wall, 3),
                    "fps": round(writer.frames / wall, 2) if wall else None},
        "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "outputs": [*OUTPUTS, *(["masks/"] if options.png_masks else []),
                    *(["coco.json"] if options.coco else [])],
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


class _Outputs:
    """Everything written per frame: overlay video, mask video, frame log, optional exports."""

    def __init__(self, folder: Path, reader: FrameReader, options: AnnotateOptions, binary: bool):
        self.folder, self.options, self.binary = folder, options, binary
        w, h, tb, fps = reader.width, reader.height, reader.time_base, reader.fps
        self.overlay = VideoWriter(folder / "overlay.mp4", w, h, rate=fps, time_base=tb)
        self.masks = MaskWriter(folder / "masks.mkv", w, h, rate=fps, time_base=tb)
        self.log = open(folder / "frames.jsonl", "w")
        self.coco = CocoWriter(folder / "coco.json", reader.spec.stem, w, h) if options.coco \
            else None
        if options.png_masks:
            (folder / "masks").mkdir()
        self.frames = self.positive = self.interpolated = 0
        self.first_time = self.last_time = None

    def add(self, frame: Decoded, probabilities: np.ndarray, mask: np.ndarray) -> None:
        if self.options.mask_values == "probabilities" and self.binary:
            gray = (np.clip(probabilities, 0, 1) * 255 + 0.5).astype(np.uint8)
        elif self.binary:
            gray = mask.astype(np.uint8) * 255
        else:
            gray = mask.astype(np.uint8)  # class indices
        layer = analyze(mask, probabilities if self.binary else None, self.options.min_area)
        self.overlay.write(draw(frame.image, layer, self.options.style), ticks=frame.pts)
        self.masks.write(gray, ticks=frame.pts)
        if self.options.png_masks:
            cv2.imwrite(str(self.folder / "masks" / f"{frame.index:06d}.png"), gray)
        present = bool(mask.any())
        if present and self.coco is not None:
            self.coco.add(frame.index, frame.time, mask, layer.regions)
        record = {"index": frame.index, "pts": frame.pts, "time": round(frame.time, 6),
                  "pts_interpolated": frame.interpolated, "polyp": present,
                  "regions": [r.as_dict() for r in layer.regions], "mask_age": 0}
        self.log.write(json.dumps(record) + "\n")
        self.frames += 1
        self.positive += present
        self.interpolated += frame.interpolated
        self.first_time = frame.time if self.first_time is None else self.first_time
        self.last_time = frame.time

    def close(self) -> None:
        for closer in (self.overlay.close, self.masks.close, self.log.close):
            closer()
        if self.coco is not None:
            self.coco.close()


def _progress(spec: InputSpec, reader: FrameReader, options: AnnotateOptions):
    from tqdm import tqdm
    return tqdm(total=reader.frame_count, desc=spec.stem, unit="frame", dynamic_ncols=True,
                disable=not options.progress, leave=True)


def is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in OUTPUTS)
