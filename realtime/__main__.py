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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_reporting_errors(args)


if __name__ == "__main__":
    sys.exit(main())
