"""Stream servers for tests, started as processes on loopback."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

SERVER = Path(__file__).with_name("stream_server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def tcp_stream(frames: int, sessions: int = 1) -> Iterator[str]:
    """A cut-after-``frames`` MPEG-TS stream on a free loopback port, ``sessions`` times;
    yields its URL once the first session is listening, and stops the server afterwards."""
    port = free_port()
    server = subprocess.Popen([sys.executable, str(SERVER), "tcp", str(port), "--frames",
                               str(frames), "--sessions", str(sessions)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().startswith("session 0")
        time.sleep(0.3)
        yield f"tcp://127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait()


RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which owns PyGObject and gst-rtsp-server


def rtsp_server_missing() -> str | None:
    """Why a real RTSP server cannot run here, or None."""
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version("
                            "'GstRtspServer', '1.0'); from gi.repository import GstRtspServer"],
                           capture_output=True, text=True)
    if probe.returncode:
        return ("gst-rtsp-server is not installed (apt-get install python3-gi "
                "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly)")
    return None


class RtspServer:
    """GStreamer's RTSP server serving an H.264 test pattern on a loopback port; ``stop()``
    makes the stream go away and ``start()`` brings it back on the same port."""

    def __init__(self, size: str = "320x240", fps: int = 25):
        self.port, self.size, self.fps = free_port(), size, fps
        self.url = f"rtsp://127.0.0.1:{self.port}/live"
        self.process: subprocess.Popen | None = None

    def start(self) -> "RtspServer":
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(RTSP_SERVER), str(self.port), "--size", self.size,
             "--fps", str(self.fps)], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> "RtspServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
