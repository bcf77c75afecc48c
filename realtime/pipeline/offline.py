"""Offline annotation: every frame of a recorded procedure, in order, with exact masks.

The core's ``every`` policy (blocking hand-overs, batched inference, nothing dropped) feeds
the offline sinks (``realtime.io.outputs``: overlay video, lossless mask video, frame log,
optional PNG masks and COCO). Everything is written into ``OUT/.<stem>.partial/`` and renamed
to ``OUT/<stem>/`` when complete: a folder named after an input is always a finished result,
and an input that fails or is interrupted leaves nothing behind.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable

from m2snet.files import atomic_directory, write_json, write_text
from realtime.errors import SourceError
from realtime.io.inputs import InputSpec, expand_inputs
from realtime.io.outputs import REQUIRED, is_complete, offline_sinks
from realtime.io.overlay import OverlayStyle
from realtime.io.results import FrameResult
from realtime.io.sinks import close_all
from realtime.io.sources import Source
from realtime.pipeline.alerts import AlertFilter, AlertSettings
from realtime.pipeline.core import Pipeline, PipelineOptions
from realtime.pipeline.tracks import PolypTracker

__all__ = ["AnnotateOptions", "InputSpec", "annotate_one", "expand_inputs", "is_complete",
           "model_summary", "write_outputs"]


@dataclass
class AnnotateOptions:
    batch: int = 1
    mask_values: str = "binary"          # or "probabilities"
    png_masks: bool = False
    coco: bool = False
    image_fps: float = 30.0              # timestamps given to image sequences
    style: OverlayStyle = field(default_factory=OverlayStyle)
    min_area: int = 64
    threshold: float | None = None       # None: the Segmenter's own
    alerts: AlertSettings = field(default_factory=AlertSettings)
    progress: bool = True


def annotate_one(spec: InputSpec, segmenter, out_dir: Path, options: AnnotateOptions) -> dict:
    """Annotate one input into ``out_dir/<stem>/``; returns its summary. On any failure or
    interruption nothing of this input is left in ``out_dir``."""
    source = spec.open(options.image_fps)
    try:
        pipeline = Pipeline(source, segmenter, PipelineOptions(
            policy="every", batch=options.batch, min_area=options.min_area,
            threshold=options.threshold, style=options.style), name=spec.source)
        return write_outputs(spec, source, pipeline, out_dir, options, lambda: {
            "model": model_summary(segmenter, options),
            "timings": {"decode_s": pipeline.stats.busy("capture"),
                        "infer_s": pipeline.stats.busy("infer") + pipeline.stats.busy("analyze")}})
    finally:
        source.close()


def model_summary(segmenter, options: AnnotateOptions) -> dict:
    info = getattr(segmenter, "info", None)
    threshold = options.threshold if options.threshold is not None else segmenter.threshold
    return {"weights": str(segmenter.weights),
            "backend": info.runner if info is not None else "model",
            "input_size": segmenter.size, "threshold": threshold}


def write_outputs(spec: InputSpec, source: Source, results: Iterable[FrameResult],
                  out_dir: Path, options: AnnotateOptions, details: Callable[[], dict]) -> dict:
    """Every output of one input from its results in frame order (``source``: the open
    source they come from, for sizes, rates and counts); written into a partial folder and
    renamed to ``out_dir/<stem>/`` when complete. ``details()``, asked once the results are
    exhausted: the summary's ``model``, the busy seconds for its ``timings``, and any other
    entries it should hold. Returns the summary."""
    with atomic_directory(out_dir / spec.stem) as folder:
        summary = _write(spec, source, results, folder, options)
        extra = details()
        summary["model"] = extra.pop("model")
        summary["timings"] = {**{k: round(v, 3) for k, v in extra.pop("timings").items()},
                              **summary["timings"]}
        summary.update(extra)
        write_json(folder / "summary.json", summary)
    summary["output"] = str(out_dir / spec.stem)
    return summary


@dataclass
class _Counts:
    frames: int = 0
    positive: int = 0
    first_time: float | None = None
    last_time: float | None = None


def _now() -> str:
    """Local time with its offset, to the millisecond (a job's order is readable from it)."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def _write(spec: InputSpec, source: Source, results: Iterable[FrameResult], folder: Path,
           options: AnnotateOptions) -> dict:
    sinks = offline_sinks(folder, spec.stem, source, options.mask_values, options.png_masks,
                          options.coco)
    counts, started, wall, writing = _Counts(), _now(), time.perf_counter(), 0.0
    progress = _progress(spec, source, options)
    alerts, tracker = AlertFilter(options.alerts), PolypTracker(source.fps or 30.0)
    try:
        for result in results:
            t = time.perf_counter()
            tracker.update(result.regions, result.index, result.time)
            result.alert = alerts.observe(result)
            for sink in sinks:
                sink.write(result)
            writing += time.perf_counter() - t
            counts.frames += 1
            counts.positive += result.polyp
            counts.first_time = result.time if counts.first_time is None else counts.first_time
            counts.last_time = result.time
            progress.update(1)
    finally:
        progress.close()
        # every output released, also after a failure: the partial folder is removed next,
        # and an open file would keep its space (a full disk would stay full)
        errors = close_all(sinks, report=False)
    if errors:
        raise errors[0]
    if counts.frames == 0:
        raise SourceError(f"{spec.source}: no decodable frame")
    wall = time.perf_counter() - wall
    events = alerts.close()
    write_text(folder / "events.jsonl", "".join(json.dumps(e.as_dict()) + "\n" for e in events))
    summary = _summary(spec, source, options, counts)
    summary["timings"] = {"write_s": round(writing, 3), "wall_s": round(wall, 3),
                          "fps": round(counts.frames / wall, 2) if wall else None}
    summary["alerts"] = {"count": len(events), **asdict(options.alerts)}
    summary["tracks"] = len(tracker.tracks)
    summary["started"], summary["finished"] = started, _now()
    return summary


def _summary(spec: InputSpec, source: Source, options: AnnotateOptions, counts: _Counts) -> dict:
    return {
        "input": spec.source, "kind": spec.kind, "frames": counts.frames,
        "width": source.width, "height": source.height,
        "time_base": str(source.time_base), "nominal_fps": source.fps or 30.0,
        "first_time": counts.first_time, "last_time": counts.last_time,
        "damaged_packets_skipped": source.damaged if spec.kind == "video" else 0,
        "unreadable_images_skipped": source.damaged if spec.kind == "images" else 0,
        "interpolated_timestamps": source.interpolated, "frames_with_polyp": counts.positive,
        "frames_declared": source.declared_frames, "incomplete": source.incomplete,
        "rotation": source.rotation,
        "settings": {"batch": options.batch, "mask_values": options.mask_values,
                     "png_masks": options.png_masks, "coco": options.coco,
                     "min_area": options.min_area, "overlay_alpha": options.style.alpha},
        "outputs": [*REQUIRED, *(["masks/"] if options.png_masks else []),
                    *(["coco.json", "coco_results.json"] if options.coco else [])],
    }


def _progress(spec: InputSpec, source: Source, options: AnnotateOptions):
    from tqdm import tqdm
    return tqdm(total=source.frame_count, desc=spec.stem, unit="frame", dynamic_ncols=True,
                disable=not options.progress, leave=True)
