"""The web app's work, apart from its page: annotating uploads, starting and stopping live
sessions, segmenting camera frames, running the quick benchmark. Each takes the app's state and
plain values and returns plain values; the page (``ui``) only wires widgets to them. Errors
meant for the user are ``JobError``s with one line."""

from __future__ import annotations

import logging
import secrets
import shutil
import time
import uuid
from argparse import Namespace
from pathlib import Path

from realtime.app.state import MAX_LIVE, AppState, LiveSession
from realtime.errors import RealtimeError, one_line

log = logging.getLogger("realtime.app")


class JobError(RealtimeError):
    """What the page shows the user when a job cannot be done."""


def annotate_videos(state: AppState, paths: list[str], weights: str, backend: str,
                    threshold: float, alpha: float, boxes: bool) -> tuple[str, list[str], str]:
    """(overlay video of the first input, downloads, Markdown report)."""
    from realtime.io.overlay import OverlayStyle
    from realtime.pipeline.offline import AnnotateOptions, InputSpec, annotate_one
    if not paths:
        raise JobError("Upload a video first.")
    try:
        uploads = [state.confined_upload(p) for p in paths]
        segmenter = state.segmenter(weights, backend)
    except Exception as error:  # noqa: BLE001
        raise JobError(one_line(error)) from None
    job = state.config.outputs / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    options = AnnotateOptions(threshold=float(threshold), style=OverlayStyle(
        alpha=float(alpha), boxes=bool(boxes), scores=bool(boxes)))
    rows, overlays, downloads = [], [], []
    for i, path in enumerate(uploads):
        stem = f"{i + 1:02d}_{Path(path).stem}"[:60]
        try:
            summary = annotate_one(InputSpec(str(path), stem, "video"), segmenter, job, options)
        except Exception as error:  # noqa: BLE001  (one bad upload does not sink the rest)
            log.warning("annotating %s failed: %s", path, one_line(error))
            # the page names the upload, not where the server keeps it
            reason = one_line(error).replace(str(path), Path(path).name)
            rows.append(f"| {Path(path).name} | failed: {reason} | | | |")
            continue
        folder = Path(summary["output"])
        overlays.append(folder / "overlay.mp4")
        downloads += [folder / name for name in ("overlay.mp4", "masks.mkv", "frames.jsonl",
                                                 "summary.json")]
        rows.append(f"| {Path(path).name} | {summary['frames']} | "
                    f"{summary['frames_with_polyp']} | {summary['timings']['fps']} | "
                    f"{summary['damaged_packets_skipped']} |")
    if not overlays:
        raise JobError("No video could be annotated: " + "; ".join(r.split("|")[2].strip()
                                                                   for r in rows))
    archive = shutil.make_archive(str(job / "annotations"), "zip", job)
    report = ("| video | frames | with polyp | frames/s | damaged packets skipped |\n"
              "|---|---|---|---|---|\n" + "\n".join(rows) +
              f"\n\nModel: {segmenter.info.label}, {Path(segmenter.weights).name}, "
              f"threshold {float(threshold):g}.")
    return str(overlays[0]), [archive, *map(str, downloads)], report


def start_live(state: AppState, source: str, weights: str, backend: str, threshold: float,
               owner: str | None = None) -> str:
    """Start a live session on a stream URL or the synthetic source for the page ``owner``
    (one per page: its previous one is stopped first); returns its token."""
    from realtime.io.sources import STREAM_SCHEMES, SourceOptions, open_source
    source = (source or "").strip()
    scheme = source.split("://", 1)[0].lower() if "://" in source else None
    if not (source == "synthetic" or source.startswith("synthetic:") or scheme in STREAM_SCHEMES):
        raise JobError("Give a stream URL (" + ", ".join(STREAM_SCHEMES) + ") or 'synthetic'.")
    if owner is not None:
        stop_owned_by(state, owner)
    if len(state.live) >= MAX_LIVE:
        raise JobError(f"{MAX_LIVE} live streams are running already; stop one first.")
    try:
        segmenter = state.segmenter(weights, backend, fresh=True)
        segmenter.warmup(iterations=1)
    except Exception as error:  # noqa: BLE001
        raise JobError(one_line(error)) from None
    try:
        opened = open_source(source, SourceOptions(reconnect_attempts=3))
    except Exception as error:  # noqa: BLE001
        # the detail (refused, timed out, no such host) stays in the server's log: the page
        # must not become a probe of what the server can reach
        log.warning("live: %s could not be opened: %s", source, one_line(error))
        raise JobError("The stream could not be opened (the server's log says why).") from None
    token = secrets.token_urlsafe(16)
    state.live[token] = LiveSession(opened, segmenter, float(threshold))
    if owner is not None:
        state.owners[token] = owner
    return token


def stop_live(state: AppState, token: str | None) -> None:
    session = state.live.pop(token, None) if token else None
    state.owners.pop(token, None)
    if session is not None:
        session.stop()


def stop_owned_by(state: AppState, owner: str) -> None:
    """Stop the live sessions a page started (when it starts another, or is closed)."""
    for token in [t for t, o in list(state.owners.items()) if o == owner]:
        stop_live(state, token)


def live_status(state: AppState, token: str | None) -> str:
    session = state.live.get(token) if token else None
    if session is None:
        return ""
    if session.error:
        return f"**Stopped:** {session.error}"
    return session.pipeline.stats.hud(session.pipeline.backend).replace(" | ", " · ")


def camera_frame(state: AppState, frame, weights: str, backend: str, threshold: float):
    """One browser-camera frame with its overlay (the shared Segmenter, this threshold)."""
    from realtime.io.overlay import analyze, draw
    if frame is None:
        return None
    segmenter = state.segmenter(weights, backend)
    probabilities, mask = segmenter(frame[..., :3], threshold=float(threshold)).numpy()
    return draw(frame[..., :3], analyze(mask, probabilities, 64))


def quick_benchmark(state: AppState) -> tuple[str, str]:
    """(Markdown tables, plot PNG path) of the quick benchmark on this machine."""
    from realtime import bench
    gpu = "cuda" in state.backends()
    args = Namespace(**bench.QUICK, quiet=False, backends=bench.default_backends(gpu),
                     precisions=bench.default_precisions(gpu))
    result = bench.run(args)
    png = state.config.outputs / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.png"
    bench.plot(result, png)
    env = result["env"]
    text = (f"{env['gpu'] or env['cpu']}, torch {env['torch']}, {result['date']}\n\n"
            + bench.markdown(result["results"]) + "\n\n" + bench.markdown_e2e(result["end_to_end"]))
    return text, str(png)
