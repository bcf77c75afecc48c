"""``python -m realtime`` (installed as ``m2snet-rt``): the runtime's command line, one module
per command (``live`` with ``demo``, ``annotate``, ``bench``, ``app``) and the flags they
share (``common``).

Exit codes: 0 success, 1 the run failed (one line on stderr; ``--debug`` adds the
traceback), 2 usage error, 130 interrupted (Ctrl-C) after closing every output.
"""

from __future__ import annotations

import argparse
import sys
import logging

from m2snet.errors import run_reporting_errors


def _prog(module_form: str) -> str:
    """How the user called us: the installed console command or ``python -m``."""
    import os
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name and not name.endswith((".py", "__main__.py")) and name != "-c" \
        else module_form


def build_parser() -> argparse.ArgumentParser:
    from realtime.cli import annotate, app, bench, live

    parser = argparse.ArgumentParser(prog=_prog("python -m realtime"),
                                     description="Real-time polyp segmentation in video.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on failure")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="live overlay on the built-in synthetic colonoscopy stream",
                       description="The synthetic colonoscopy stream segmented live by the "
                                   "bundled demo model: in a window when there is a display, "
                                   "otherwise recorded to runs/demo/demo.mp4 (10 s).")
    p.add_argument("--seed", type=int, default=1, help="which synthetic colon to fly through")
    live.add_arguments(p, with_source=False)
    p.set_defaults(run=live.run_demo)

    p = sub.add_parser("live", help="segment a file, stream, camera or folder live",
                       description="Capture -> segment -> overlay -> window/recording at the "
                                   "source's frame rate. Window keys: q/Esc quit, space pause, "
                                   "o overlay, h HUD, f full screen.")
    live.add_arguments(p)
    p.set_defaults(run=live.run_live)

    p = sub.add_parser("annotate", help="every frame of recorded videos: overlay, lossless "
                                        "masks, a per-frame log and a summary",
                       description="Annotate every frame of each INPUT into OUT/<stem>/: "
                                   "overlay.mp4 (input timestamps), masks.mkv (lossless), "
                                   "frames.jsonl, summary.json. A bad input fails alone.")
    annotate.add_arguments(p)
    p.set_defaults(run=annotate.run)

    p = sub.add_parser("bench", help="frames per second over backends, precisions, batches, "
                                     "sizes and subtraction units, plus end-to-end runs",
                       description="Model grid (warm-up, synchronized timing, median and p99, "
                                   "outputs checked against the authors' formulation) and "
                                   "end-to-end annotate/live runs on a generated video. "
                                   "Writes JSON and a PNG plot, prints Markdown tables.")
    bench.add_arguments(p)
    p.set_defaults(run=bench.run)

    p = sub.add_parser("app", help="the web app: annotate uploads, watch a live stream, "
                                   "run the benchmark in a browser",
                       description="Serve the web app (Gradio). Listens on 127.0.0.1 unless "
                                   "told otherwise; uploads and results stay in --workdir.")
    app.add_arguments(p)
    p.set_defaults(run=app.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        return 130
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_reporting_errors(args)
