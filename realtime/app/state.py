"""What the web app keeps between requests: its folders, the loaded Segmenters, and the live
sessions (each a live pipeline in its own thread, its newest frame kept as JPEG)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from realtime.io.sinks import Sink

BUNDLED = "demo model (synthetic data, not clinical)"
MAX_LIVE = 4  # live sessions at once, all pages together: each holds a model and two threads


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


class JpegSink(Sink):
    """Keeps the newest overlaid frame as JPEG for the MJPEG endpoint."""

    def __init__(self):
        self.jpeg: bytes | None = None
        self.sequence = 0

    def write(self, result) -> None:
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(result.composite, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            self.jpeg, self.sequence = data.tobytes(), self.sequence + 1


class LiveSession:
    def __init__(self, source, segmenter, threshold: float):
        from realtime.pipeline.live import LiveOptions, LivePipeline
        self.sink = JpegSink()
        self.pipeline = LivePipeline(source, segmenter, [self.sink],
                                     LiveOptions(threshold=threshold))
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="app-live")
        self.thread.start()

    def _run(self) -> None:
        from realtime.errors import one_line
        try:
            self.pipeline.run()
        except Exception as error:  # noqa: BLE001  (shown on the page)
            self.error = one_line(error)

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
        self.owners: dict[str, str] = {}  # live session token -> the page (Gradio session)
        self.weights = {BUNDLED: None, **{p.name: p for p in config.weights}}
        self._lock = threading.Lock()

    def backends(self) -> list[str]:
        """auto and every backend that can run on this machine."""
        from realtime.engine import backends
        return ["auto", *backends.available()]

    def segmenter(self, weights: str, backend: str, fresh: bool = False):
        """The shared Segmenter of these weights and backend (loaded once); ``fresh``: one of
        its own (a live session's, which must not wait for the others' calls). Thresholds are
        given per call, so sharing one is safe."""
        from realtime.engine import Segmenter
        if weights not in self.weights:
            raise ValueError(f"unknown weights {weights!r}")
        if fresh:
            return Segmenter(self.weights[weights], backend=backend)
        with self._lock:
            key = (weights, backend)
            if key not in self.segmenters:
                self.segmenters[key] = Segmenter(self.weights[weights], backend=backend)
            return self.segmenters[key]

    def confined_upload(self, path: str) -> Path:
        """Uploaded files only: a path outside the upload folder is refused."""
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(self.config.uploads.resolve()):
            raise ValueError("only files uploaded through this page can be annotated")
        return resolved
