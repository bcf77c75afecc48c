"""A real RTSP server on loopback for the stream tests: GStreamer's gst-rtsp-server (Debian's
gir1.2-gst-rtsp-server-1.0), run by the system Python that owns PyGObject (python3-gi).

    /usr/bin/python3 rtsp_server.py PORT [--path /live] [--size 320x240] [--fps 25]

Serves an H.264 test pattern over RTP at rtsp://127.0.0.1:PORT/PATH and prints "ready" once
it listens. Kill it to make the stream go away; start it again on the same port to bring it
back."""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--path", default="/live")
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--fps", type=int, default=25)
    args = parser.parse_args()
    width, height = args.size.split("x")

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},"
        f"height={height},framerate={args.fps}/1 ! videoconvert ! x264enc tune=zerolatency "
        f"speed-preset=ultrafast key-int-max={args.fps} ! rtph264pay name=pay0 pt=96 "
        f"config-interval=1 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{args.port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
