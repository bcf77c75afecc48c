"""End to end on a generated procedure video: offline annotation (decode -> infer ->
overlay -> H.264 + FFV1) and the live pipeline's capture-to-sink latency, with the backend a
plain ``live`` or ``annotate`` run gets."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from realtime.engine import backends


def procedure_video(path: Path, fps: int, seconds: float, width: int, height: int,
                    keyint: int | None = None) -> Path:
    """A synthetic procedure: the colon in a square field of view centred on a black frame,
    as endoscopy monitors show it, H.264 (``keyint``: frames between keyframes, else x264's
    default of at most 250)."""
    import cv2  # noqa: F401
    import av

    from m2snet.phantom import PhantomScene
    scene = PhantomScene(2, height, max_polyps=4, polyp_probability=1.0)
    x0 = (width - height) // 2
    canvas = np.zeros((height, width, 3), np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "veryfast", "crf": "20",
                                        **({"g": str(keyint)} if keyint else {})}
        for i in range(int(seconds * fps)):
            canvas[:, x0:x0 + height] = scene.frame(i / fps)[0]
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def end_to_end(weights: Path | None, backend: str, height: int, seconds: float, folder: Path,
               batch: int = 1) -> list[dict]:
    """Offline (decode -> infer -> overlay -> H.264 + FFV1) and live (paced source -> null
    sink) on the same generated video."""
    from realtime.engine import Segmenter
    from realtime.io.sinks import NullSink
    from realtime.io.sources import open_source
    from realtime.pipeline.live import LiveOptions, LivePipeline
    from realtime.pipeline.offline import AnnotateOptions, InputSpec, annotate_one

    width = height * 16 // 9
    video = procedure_video(folder / f"procedure_{height}p.mp4", 30, seconds, width, height)
    segmenter = Segmenter(weights, backend=backend)
    segmenter.warmup(iterations=2, batch=batch)
    summary = annotate_one(InputSpec(str(video), "e2e", "video"), segmenter, folder / "out",
                           AnnotateOptions(batch=batch, progress=False))
    t = summary["timings"]
    rows = [{"pipeline": "annotate", "size": f"{width}x{height}", "backend":
             segmenter.info.runner, "batch": batch, "frames": summary["frames"],
             "fps": t["fps"], "busy_s": {k: t[k] for k in ("decode_s", "infer_s", "write_s")},
             "wall_s": t["wall_s"]}]
    live = LivePipeline(open_source(str(video)), segmenter, [NullSink()], LiveOptions()).run()
    rows.append({"pipeline": "live", "size": f"{width}x{height}", "source_fps": 30,
                 "backend": segmenter.info.runner, "fps": live["fps"],
                 "latency_ms": live["latency_ms"], "mask_age_ms": live["mask_age_ms"],
                 "stage_ms_median": live["stage_ms_median"],
                 "frames_dropped": live["frames_dropped"],
                 "frames_not_displayed": live["frames_not_displayed"]})
    return rows


def end_to_end_backend(listed: list[str]) -> str:
    """The backend users get by default (auto's choice) when it is among those benched, so
    that end-to-end numbers are the ones a plain ``live`` or ``annotate`` run sees."""
    chosen = backends.resolve("auto").name
    return chosen if chosen in listed else listed[0]
