"""``python -m realtime``: the runtime's command line."""

from __future__ import annotations

import argparse
import sys


def _demo(_: argparse.Namespace) -> int:
    print("error: the live demo is not built yet: it needs the bundled demo model and the "
          "live pipeline (see the README's status table)", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realtime",
                                     description="Real-time polyp segmentation in video.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("demo", help="live overlay on the built-in synthetic colonoscopy stream "
                                "(not built yet)").set_defaults(run=_demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
