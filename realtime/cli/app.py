"""``python -m realtime app``: flags around the web app."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--auth", metavar="USER:PASS", help="require this user name and password")
    p.add_argument("--workdir", default="runs/app",
                   help="folder for uploads and results (default runs/app)")
    p.add_argument("--max-upload", default="2gb", help="largest upload (default 2gb)")
    p.add_argument("--weights", action="append", default=[], metavar="FILE",
                   help="offer these checkpoints besides the bundled model (repeatable)")


def run(args: argparse.Namespace) -> int:
    from realtime.app import AppConfig, serve
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            raise ValueError("--auth takes USER:PASS (both non-empty)")
        auth = (user, password)
    weights = [Path(w) for w in args.weights]
    for w in weights:
        if not w.is_file():
            raise FileNotFoundError(f"{w}: no such weights file")
    serve(AppConfig(Path(args.workdir), auth, args.max_upload, weights), args.host, args.port)
    return 0
