"""``python -m realtime``: the runtime's command line.

Exit codes: 0 success, 1 the run failed (one line on stderr; ``--debug`` adds the
traceback), 2 usage error, 130 interrupted (Ctrl-C) after closing every output.
"""

from __future__ import annotations

import argparse
import logging
import sys

from m2snet.cli import run_reporting_errors


def build_parser() -> argparse.ArgumentParser:
    from realtime import annotate_cli, live_cli

    parser = argparse.ArgumentParser(prog="python -m realtime",
                                     description="Real-time polyp segmentation in video.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on failure")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="live overlay on the built-in synthetic colonoscopy stream",
                       description="The synthetic colonoscopy stream segmented live by the "
                                   "bundled demo model: in a window when there is a display, "
                                   "otherwise recorded to runs/demo/demo.mp4 (10 s).")
    p.add_argument("--seed", type=int, default=1, help="which synthetic colon to fly through")
    live_cli.add_runtime_arguments(p)
    live_cli.add_live_arguments(p, with_source=False)
    p.set_defaults(run=live_cli.run_demo)

    p = sub.add_parser("live", help="segment a file, stream, camera or folder live",
                       description="Capture -> segment -> overlay -> window/recording at the "
                                   "source's frame rate. Window keys: q/Esc quit, space pause, "
                                   "o overlay, h HUD, f full screen.")
    live_cli.add_runtime_arguments(p)
    live_cli.add_live_arguments(p)
    p.set_defaults(run=live_cli.run_live)

    p = sub.add_parser("annotate", help="every frame of recorded videos: overlay, lossless "
                                        "masks, a per-frame log and a summary",
                       description="Annotate every frame of each INPUT into OUT/<stem>/: "
                                   "overlay.mp4 (input timestamps), masks.mkv (lossless), "
                                   "frames.jsonl, summary.json. A bad input fails alone.")
    annotate_cli.add_arguments(p)
    p.set_defaults(run=annotate_cli.run)

    p = sub.add_parser("bench", help="frames per second over backends, precisions, batches, "
                                     "sizes and subtraction units, plus end-to-end runs",
                       description="Model grid (warm-up, synchronized timing, median and p99, "
                                   "outputs checked against the authors' formulation) and "
                                   "end-to-end annotate/live runs on a generated video. "
                                   "Writes JSON and a PNG plot, prints Markdown tables.")
    add_bench_arguments(p)
    p.set_defaults(run=_bench)

    p = sub.add_parser("app", help="the web app: annotate uploads, watch a live stream, "
                                   "run the benchmark in a browser",
                       description="Serve the web app (Gradio). Listens on 127.0.0.1 unless "
                                   "told otherwise; uploads and results stay in --workdir.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--auth", metavar="USER:PASS", help="require this user name and password")
    p.add_argument("--workdir", default="runs/app",
                   help="folder for uploads and results (default runs/app)")
    p.add_argument("--max-upload", default="2gb", help="largest upload (default 2gb)")
    p.add_argument("--weights", action="append", default=[], metavar="FILE",
                   help="offer these checkpoints besides the bundled model (repeatable)")
    p.set_defaults(run=_app)
    return parser


def _app(args: argparse.Namespace) -> int:
    from pathlib import Path

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


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    from realtime.bench import default_backends, default_precisions
    gpu = "cuda" if _has_gpu() else "cpu"
    p.add_argument("--quick", action="store_true",
                   help="a small grid (demo model, the default backends, 256, three "
                        "subtraction units) and a short 360p end-to-end run: about a minute "
                        "on a CPU")
    p.add_argument("--models", default="demo,m2snet",
                   help="comma list: demo (bundled), m2snet / msnet (Res2Net-50, random "
                        "weights), or checkpoint files (default demo,m2snet)")
    backends = ",".join(default_backends(gpu == "cuda"))
    p.add_argument("--backends", default=backends,
                   help=f"comma list (default {backends}; openvino runs the factored unit "
                        f"only; end to end runs auto's choice when listed)")
    p.add_argument("--precisions", default=",".join(default_precisions(gpu == "cuda")),
                   help="comma list of fp32, fp16, bf16")
    p.add_argument("--batches", default="1,4", help="comma list (default 1,4)")
    p.add_argument("--sizes", default="256,352", help="network input sides (default 256,352)")
    p.add_argument("--impls", default="reference,factored,kernel",
                   help="subtraction units: reference (the authors' dense form), factored, "
                        "kernel (fused)")
    p.add_argument("--repeats", type=int, default=15, help="timed runs per case (default 15)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--e2e-height", type=int, default=1080 if gpu == "cuda" else 720,
                   help="end-to-end video height (0: skip; default 720 on CPU, 1080 on GPU)")
    p.add_argument("--e2e-seconds", type=float, default=5.0, help="end-to-end video length")
    p.add_argument("--json", default="runs/bench/bench.json", help="where the results go")
    p.add_argument("--plot", help="PNG plot (default: next to --json)")
    p.add_argument("--compare", metavar="OLD.json", help="print fps ratios against this run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _has_gpu() -> bool:
    import torch
    return torch.cuda.is_available()


def _bench(args: argparse.Namespace) -> int:
    from realtime import bench
    if args.quick:
        for name, value in bench.QUICK.items():
            setattr(args, name, value)
    return bench.main(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_reporting_errors(args)


if __name__ == "__main__":
    sys.exit(main())
