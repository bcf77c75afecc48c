"""One Segmenter driven from several threads at several batch sizes, as a process that
annotates and then goes live does: annotate at each batch size (its inference thread), then
live at batch 1 (another thread), each on a 1080p procedure. Each run's frames per second, or
the error it ended with.

    python benchmarks/compile_threads.py --backend compile --batches 1,8 --json threads.json

Written for CUDA graphs: on an H200, live after a batch-8 annotate failed to record its graph
in the new thread (see realtime/engine/backends/compile.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2  # noqa: F401  (before av)

from realtime.bench.end_to_end import end_to_end
from realtime.bench.environment import describe_environment, write_result
from realtime.errors import one_line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="compile")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    runs = []
    for batch in (int(b) for b in args.batches.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            try:
                rows = end_to_end(None, args.backend, args.height, args.seconds, Path(tmp),
                                  batch=batch)
                outcome = {"rows": rows}
            except Exception as error:  # noqa: BLE001  (the next batch size still runs)
                outcome = {"error": one_line(error, limit=600)}
        runs.append({"batch": batch, "seconds": round(time.perf_counter() - start, 1),
                     **outcome})
        for row in outcome.get("rows", []):
            print(f"batch {batch}: {row['pipeline']} {row['backend']} {row['fps']}")
        if "error" in outcome:
            print(f"batch {batch}: FAILED {outcome['error']}")
    write_result(args.json, {"benchmark": "compile_threads", "date": time.strftime("%Y-%m-%d"),
                             "command": "python " + " ".join(sys.argv),
                             "env": describe_environment(), "runs": runs})
    return 1 if any("error" in r for r in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
