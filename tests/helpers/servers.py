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
