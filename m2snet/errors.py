"""The error base of the model package and the one rule for turning any error into one line.

Every error this package raises on purpose is an ``M2SNetError`` whose message names the input
and the fix; command lines print such a message as it is, and anything else through
``one_line`` (a library's message can span many lines: its own location first, the gist last).
"""

from __future__ import annotations


class M2SNetError(Exception):
    """An input or setting the model package cannot use; the message says which and why."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """The message on one line: its lines joined; past ``limit`` characters the start (which
    names what failed) and the end (where libraries put the gist) are kept."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    text = text or type(error).__name__
    if len(text) <= limit:
        return text
    head = limit // 3
    return f"{text[:head]} ... {text[-(limit - head - 5):]}"


def run_reporting_errors(args) -> int:
    """Run a command line's ``args.run(args)`` under the exit-code contract both command
    lines share: 0 success (or what the command returns), 1 a failure (one line on stderr;
    ``args.debug`` adds the traceback), 130 Ctrl-C (at any moment, model loading included)."""
    import sys
    import traceback
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001  (the contract: one line, not a traceback)
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 1


def program_name(module_form: str) -> str:
    """How the user called a command line: the installed console command, or ``python -m``."""
    import os
    import sys
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name and not name.endswith(".py") and name != "-c" else module_form
