"""``python -m realtime``: the runtime's command line.

Exit codes: 0 success, 1 the run failed (one line on stderr; ``--debug`` adds the
traceback), 2 usage error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from m2snet.cli import run_reporting_errors


def _demo(args: argparse.Namespace) -> int:
    from realtime.demo import display_available, run_demo
    from realtime.segmenter import Segmenter

    segmenter = Segmenter(args.weights, backend=args.backend)
    show = display_available() and not args.record
    if not show:
        print(f"no display: recording {args.seconds or 10:g} s of the overlay to "
              f"{args.record or 'runs/demo/demo.mp4'}", flush=True)
    stats = run_demo(segmenter, seconds=args.seconds, fps=args.fps, seed=args.seed,
                     record=Path(args.record) if args.record else None, show=show)
    print(f"shown {stats['shown']} of {stats['produced']} frames ({stats['dropped']} dropped "
          f"to stay live), {stats['fps']:.1f} fps, median latency "
          f"{stats['median_latency_ms'] or 0:.0f} ms"
          + (f"; video: {stats['recording']}" if stats["recording"] else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realtime",
                                     description="Real-time polyp segmentation in video.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on failure")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("demo", help="live overlay on the built-in synthetic colonoscopy stream")
    p.add_argument("--weights", help="checkpoint (default: the bundled demo model)")
    p.add_argument("--backend", default="auto", help="auto, cpu, cuda, compile, tensorrt")
    p.add_argument("--seconds", type=float, help="stop after this long (default: until q in "
                                                 "a window; 10 s when recording)")
    p.add_argument("--fps", type=float, default=30.0, help="stream frame rate (default 30)")
    p.add_argument("--seed", type=int, default=1, help="which synthetic colon to fly through")
    p.add_argument("--record", help="write the overlay video here (MP4) instead of a window")
    p.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_reporting_errors(args)


if __name__ == "__main__":
    sys.exit(main())
