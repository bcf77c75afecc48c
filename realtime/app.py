"""The web app: annotate uploaded videos and watch a live stream with overlays in a browser.

    python -m realtime app [--host 127.0.0.1] [--port 7860] [--auth user:pass]

Gradio 6 pages mounted on a FastAPI app, which also serves the live overlay as an MJPEG stream
(``/live/<token>.mjpg``; the token is handed out only through the page, so the stream is as
private as the page). Safe defaults: it listens on 127.0.0.1, uploads and results stay in the
app's work folder, uploads are size-limited, the model runs one job at a time, and Gradio's
usage analytics are off.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import threading
import time
import uuid
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no telemetry, before gradio is imported

import cv2  # noqa: E402

log = logging.getLogger("realtime.app")

BUNDLED = "demo model (synthetic data, not clinical)"


@dataclass
class AppConfig:
    workdir: Path = Path("runs/app")
    auth: tuple[str, str] | None = None
    max_upload: str = "2gb"
    weights: list[Path] = field(default_factory=list)   # offered besides the bundled model

    @property
    def uploads(self) -> Path:
        return self.workdir / "uploads"

    @property
    def outputs(self) -> Path:
        return self.workdir / "outputs"


class JpegSink:
    """Keeps the newest overlaid frame as JPEG for the MJPEG endpoint."""
    quit_requested = False

    def __init__(self):
        self.jpeg: bytes | None = None
        self.sequence = 0

    def write(self, view) -> None:
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(view.composite, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            self.jpeg, self.sequence = data.tobytes(), self.sequence + 1

    def close(self) -> None:
        pass


class LiveSession:
    def __init__(self, source, segmenter):
        from realtime.live import LiveOptions, LivePipeline
        self.sink = JpegSink()
        self.pipeline = LivePipeline(source, segmenter, [self.sink], LiveOptions())
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="app-live")
        self.thread.start()

    def _run(self) -> None:
        try:
            self.pipeline.run()
        except Exception as error:  # noqa: BLE001  (shown on the page)
            self.error = str(error).splitlines()[0]

    def stop(self) -> None:
        self.pipeline.stop.set()
        self.thread.join(timeout=15)

    @property
    def running(self) -> bool:
        return self.thread.is_alive()


class AppState:
    def __init__(self, config: AppConfig):
        self.config = config
        for folder in (config.uploads, config.outputs):
            folder.mkdir(parents=True, exist_ok=True)
        self.segmenters: dict = {}
        self.live: dict[str, LiveSession] = {}
        self.weights = {BUNDLED: None, **{p.name: p for p in config.weights}}

    def backends(self) -> list[str]:
        import torch
        from realtime.backends import openvino_module, tensorrt_module
        choices = ["auto", "cpu"] + (["openvino"] if openvino_module() else []) + ["compile"]
        if torch.cuda.is_available():
            choices += ["cuda"] + (["tensorrt"] if tensorrt_module() else [])
        return choices

    def segmenter(self, weights: str, backend: str, threshold: float, fresh: bool = False):
        from realtime.segmenter import Segmenter
        if weights not in self.weights:
            raise ValueError(f"unknown weights {weights!r}")
        key = (weights, backend)
        if fresh or key not in self.segmenters:
            segmenter = Segmenter(self.weights[weights], backend=backend, threshold=threshold)
            if fresh:
                return segmenter
            self.segmenters[key] = segmenter
        segmenter = self.segmenters[key]
        segmenter.threshold = threshold
        return segmenter

    def confined_upload(self, path: str) -> Path:
        """Uploaded files only: a path outside the upload folder is refused."""
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(self.config.uploads.resolve()):
            raise ValueError("only files uploaded through this page can be annotated")
        return resolved


def annotate_videos(state: AppState, video, more, weights, backend, threshold, alpha, boxes):
    """The Annotate tab's job: returns (overlay video of the first input, downloads, report)."""
    import gradio as gr

    from realtime.annotate import AnnotateOptions, InputSpec, annotate_one
    from realtime.overlay import OverlayStyle
    paths = [p for p in [video, *(more or [])] if p]
    if not paths:
        raise gr.Error("Upload a video first.")
    try:
        uploads = [state.confined_upload(p) for p in paths]
        segmenter = state.segmenter(weights, backend, float(threshold))
    except Exception as error:  # noqa: BLE001
        raise gr.Error(str(error).splitlines()[0]) from None
    job = state.config.outputs / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    options = AnnotateOptions(style=OverlayStyle(alpha=float(alpha), boxes=bool(boxes),
                                                 scores=bool(boxes)))
    rows, overlays, downloads = [], [], []
    for i, path in enumerate(uploads):
        stem = f"{i + 1:02d}_{Path(path).stem}"[:60]
        try:
            summary = annotate_one(InputSpec(str(path), stem, "video"), segmenter, job, options)
        except Exception as error:  # noqa: BLE001  (one bad upload does not sink the rest)
            rows.append(f"| {Path(path).name} | failed: {str(error).splitlines()[0]} | | | |")
            continue
        folder = Path(summary["output"])
        overlays.append(folder / "overlay.mp4")
        downloads += [folder / "overlay.mp4", folder / "masks.mkv", folder / "frames.jsonl",
                      folder / "summary.json"]
        rows.append(f"| {Path(path).name} | {summary['frames']} | "
                    f"{summary['frames_with_polyp']} | {summary['timings']['fps']} | "
                    f"{summary['damaged_packets_skipped']} |")
    if not overlays:
        raise gr.Error("No video could be annotated: " + "; ".join(r.split("|")[2].strip()
                                                                    for r in rows))
    archive = shutil.make_archive(str(job / "annotations"), "zip", job)
    report = ("| video | frames | with polyp | frames/s | damaged packets skipped |\n"
              "|---|---|---|---|---|\n" + "\n".join(rows) +
              f"\n\nModel: {segmenter.runner.description.replace(' (cpu)', '')}, "
              f"{Path(segmenter.weights).name}, "
              f"threshold {segmenter.threshold:g}.")
    return str(overlays[0]), [archive, *map(str, downloads)], report


def build_blocks(state: AppState):
    import gradio as gr

    from realtime.sources import STREAM_SCHEMES, SourceOptions, open_source

    weights_choices = list(state.weights)
    with gr.Blocks(title="M2SNet polyp segmentation") as blocks:
        gr.Markdown("## M2SNet polyp segmentation\nAnnotate recorded colonoscopy videos or "
                    "watch a live stream with the masks drawn over it. The bundled model is a "
                    "demonstration trained on synthetic frames, **not a clinical model**.")
        with gr.Row():
            weights = gr.Dropdown(weights_choices, value=weights_choices[0], label="Weights")
            backend = gr.Dropdown(state.backends(), value="auto", label="Backend")
            threshold = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="Threshold")
        with gr.Tab("Annotate"):
            with gr.Row():
                with gr.Column():
                    video = gr.Video(label="Video", sources=["upload"])
                    more = gr.File(label="More videos (optional)", file_count="multiple",
                                   file_types=["video"])
                    with gr.Row():
                        alpha = gr.Slider(0, 1, value=0.35, step=0.05, label="Overlay opacity")
                        boxes = gr.Checkbox(value=True, label="Boxes and confidence")
                    run = gr.Button("Annotate", variant="primary")
                with gr.Column():
                    result = gr.Video(label="Overlay", interactive=False)
                    files = gr.File(label="Downloads: masks (lossless), per-frame log, "
                                          "summary, everything as .zip", interactive=False)
                    report = gr.Markdown()

            def _annotate(video, more, weights, backend, threshold, alpha, boxes,
                          progress=gr.Progress(track_tqdm=True)):
                # ``progress`` (tracking tqdm) must be a parameter for Gradio to show it
                return annotate_videos(state, video, more, weights, backend, threshold, alpha,
                                       boxes)

            run.click(_annotate, [video, more, weights, backend, threshold, alpha, boxes],
                      [result, files, report], api_name="annotate", concurrency_id="model",
                      concurrency_limit=1)

        with gr.Tab("Live"):
            token = gr.State(None)
            with gr.Row():
                url = gr.Textbox(label="Stream", placeholder="rtsp://camera.local/stream, "
                                 "http://…, udp://…, or synthetic", value="synthetic", scale=4)
                start = gr.Button("Start", variant="primary", scale=1)
                stop = gr.Button("Stop", scale=1)
            view = gr.HTML("<p>Press Start to watch the stream with its overlay.</p>")
            stats = gr.Markdown()
            timer = gr.Timer(1.0, active=False)

            def _start(source, weights, backend, threshold, old):
                _stop(old)
                source = (source or "").strip()
                scheme = source.split("://", 1)[0].lower() if "://" in source else None
                if not (source == "synthetic" or source.startswith("synthetic:")
                        or scheme in STREAM_SCHEMES):
                    raise gr.Error("Give a stream URL (" + ", ".join(STREAM_SCHEMES) +
                                   ") or 'synthetic'.")
                try:
                    segmenter = state.segmenter(weights, backend, float(threshold), fresh=True)
                    segmenter.warmup(iterations=1)
                    opened = open_source(source, SourceOptions(reconnect_attempts=3))
                except Exception as error:  # noqa: BLE001
                    raise gr.Error(str(error).splitlines()[0]) from None
                key = secrets.token_urlsafe(16)
                state.live[key] = LiveSession(opened, segmenter)
                html = (f'<img src="/live/{key}.mjpg" alt="live overlay" '
                        f'style="max-width:100%;max-height:70vh;background:#000">')
                return html, key, gr.Timer(active=True)

            def _stop(key):
                session = state.live.pop(key, None) if key else None
                if session is not None:
                    session.stop()
                return "<p>Stopped.</p>", None, gr.Timer(active=False)

            def _stats(key):
                session = state.live.get(key) if key else None
                if session is None:
                    return ""
                if session.error:
                    return f"**Stopped:** {session.error}"
                s = session.pipeline.stats
                return s.hud(session.pipeline.backend).replace(" | ", " · ")

            start.click(_start, [url, weights, backend, threshold, token], [view, token, timer],
                        api_name="live_start")
            stop.click(_stop, [token], [view, token, timer], api_name="live_stop")
            timer.tick(_stats, [token], [stats], api_visibility="private")

            gr.Markdown("Or the browser's camera (frames go to the server and come back "
                        "overlaid):")
            with gr.Row():
                camera = gr.Image(sources=["webcam"], streaming=True, type="numpy",
                                  label="Camera")
                overlaid = gr.Image(label="Overlay", interactive=False)

            def _camera(frame, weights, backend, threshold):
                from realtime.overlay import analyze, draw
                if frame is None:
                    return None
                segmenter = state.segmenter(weights, backend, float(threshold))
                probabilities, mask = segmenter(frame[..., :3]).numpy()
                return draw(frame[..., :3], analyze(mask, probabilities, 64))

            camera.stream(_camera, [camera, weights, backend, threshold], [overlaid],
                          stream_every=0.1, concurrency_id="camera", concurrency_limit=1,
                          api_visibility="private")

        with gr.Tab("Benchmark"):
            gr.Markdown("The quick benchmark: the bundled model on this machine's default "
                        "backend with the three subtraction units, and a short end-to-end run "
                        "(about a minute on a CPU).")
            bench = gr.Button("Run the quick benchmark", variant="primary")
            table = gr.Markdown()
            chart = gr.Image(label="frames per second", interactive=False)

            def _bench(progress=gr.Progress(track_tqdm=True)):
                from realtime import bench as bench_module
                gpu = "cuda" in state.backends()
                args = Namespace(**bench_module.QUICK, quiet=False,
                                 backends=bench_module.default_backends(gpu),
                                 precisions=bench_module.default_precisions(gpu))
                result = bench_module.run(args)
                png = state.config.outputs / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.png"
                bench_module.plot(result, png)
                env = result["env"]
                text = (f"{env['gpu'] or env['cpu']}, torch {env['torch']}, {result['date']}\n\n"
                        + bench_module.markdown(result["results"]) + "\n\n"
                        + bench_module.markdown_e2e(result["end_to_end"]))
                return text, str(png)

            bench.click(_bench, None, [table, chart], api_name="benchmark",
                        concurrency_id="model", concurrency_limit=1)
    return blocks


def build_app(config: AppConfig):
    """The FastAPI application: Gradio at /, the MJPEG streams at /live/<token>.mjpg."""
    os.environ["GRADIO_TEMP_DIR"] = str(config.uploads.resolve())  # uploads stay in workdir
    import gradio as gr
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import StreamingResponse

    state = AppState(config)
    blocks = build_blocks(state)
    blocks.queue(default_concurrency_limit=1)
    api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @api.get("/live/{key}.mjpg")
    async def mjpeg(key: str):
        session = state.live.get(key)
        if session is None:
            raise HTTPException(status_code=404, detail="no such live session")

        async def frames():
            seen = -1
            while key in state.live and session.running:
                if session.sink.sequence != seen and session.sink.jpeg is not None:
                    seen, jpeg = session.sink.sequence, session.sink.jpeg
                    yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                           + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                await asyncio.sleep(0.005)

        return StreamingResponse(frames(), media_type="multipart/x-mixed-replace; boundary=frame")

    app = gr.mount_gradio_app(api, blocks, path="/", auth=config.auth,
                              allowed_paths=[str(config.outputs.resolve())],
                              max_file_size=config.max_upload, footer_links=["api"],
                              theme=gr.themes.Soft())
    app.state.m2snet = state
    return app


def serve(config: AppConfig, host: str, port: int) -> None:
    import uvicorn
    app = build_app(config)
    where = f"http://{host}:{port}/"
    print(f"M2SNet app: {where} (work folder {config.workdir}; "
          f"{'password required' if config.auth else 'no password'}); Ctrl-C stops it",
          flush=True)
    if host not in ("127.0.0.1", "localhost", "::1") and not config.auth:
        log.warning("listening on %s without --auth: anyone who can reach this machine can "
                    "use the app", host)
    uvicorn.run(app, host=host, port=port, log_level="warning")


