"""A live MPEG-TS encoder serving on loopback, for stream tests (run as a process):

    python tests/helpers/stream_server.py tcp PORT --frames 60 --fps 30 --sessions 2

``tcp``: listens on 127.0.0.1:PORT; each session waits for a client, streams FRAMES frames in
real time, then closes the connection (a cut stream); after SESSIONS sessions it exits.
``udp``: sends SESSIONS x FRAMES frames to 127.0.0.1:PORT.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import cv2  # noqa: E402,F401
import av  # noqa: E402

from tests.helpers.videos import pattern_frame  # noqa: E402


def serve(url: str, frames: int, fps: float, start_index: int) -> None:
    with av.open(url, "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.codec_context.options = {"bf": "0", "preset": "ultrafast", "tune": "zerolatency",
                                        "g": "10"}
        began = time.perf_counter()
        for i in range(frames):
            delay = began + i / fps - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            frame = av.VideoFrame.from_ndarray(pattern_frame(start_index + i, 160, 120),
                                               format="rgb24")
            frame.pts = start_index + i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("protocol", choices=("tcp", "udp"))
    parser.add_argument("port", type=int)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds to wait before sending (udp: let the receiver bind)")
    args = parser.parse_args()
    time.sleep(args.delay)
    for session in range(args.sessions):
        if args.protocol == "tcp":
            url = f"tcp://127.0.0.1:{args.port}?listen=1&listen_timeout=20000"
        else:
            url = f"udp://127.0.0.1:{args.port}?pkt_size=1316"
        print(f"session {session}", flush=True)
        serve(url, args.frames, args.fps, session * args.frames)


if __name__ == "__main__":
    main()
