"""``python -m realtime bench``: frames per second over a grid of backends, precisions, batch
sizes, input sizes and subtraction-unit implementations, plus end-to-end runs; comparable JSON,
a Markdown table, a plot, and ratios against an earlier run.

Every model row is warmed up, timed with the device synchronized (CUDA events on a GPU), and
checked against the authors' formulation (dense subtraction units, fp32) on the same frame:
the largest probability difference and the Dice of the masks. ``speedup`` is the row's fps
over the ``reference`` row of the same model, backend, precision, batch and size, measured in
the same run.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from m2snet.files import write_json
from realtime.bench.end_to_end import end_to_end, end_to_end_backend, procedure_video
from realtime.bench.environment import cpu_name, describe_environment
from realtime.bench.grid import IMPLS, KEY, Case, build_cases, model_weights, run_grid
from realtime.bench.report import compare, markdown, markdown_e2e, plot
from realtime.errors import one_line

log = logging.getLogger("realtime.bench")

SCHEMA = "m2snet-rt-bench/1"

__all__ = ["IMPLS", "KEY", "QUICK", "SCHEMA", "Case", "compare", "cpu_name", "default_backends",
           "default_precisions", "describe_environment", "end_to_end", "main", "markdown",
           "markdown_e2e", "plot", "procedure_video", "run"]


def run(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        weights = {name: model_weights(name, Path(tmp)) for name in args.models}
        cases = build_cases(args)
        rows = run_grid(cases, weights, args.warmup, args.repeats, progress=not args.quiet)
        e2e = []
        if args.e2e_height:
            backend = end_to_end_backend(args.backends)
            try:
                e2e = end_to_end(weights[args.models[0]], backend, args.e2e_height,
                                 args.e2e_seconds, Path(tmp))
            except Exception as error:  # noqa: BLE001  (the grid's results are kept)
                log.warning("end to end with %s failed: %s", backend, one_line(error))
                e2e = [{"pipeline": "end_to_end", "backend": backend,
                        "error": one_line(error)}]
    return {"schema": SCHEMA, "date": time.strftime("%Y-%m-%d"), "command":
            "python -m realtime " + " ".join(sys.argv[1:]) if sys.argv else "",
            "env": describe_environment(), "results": rows, "end_to_end": e2e}


QUICK = {"models": ["demo"], "batches": [1], "sizes": [256],
         "impls": ["reference", "factored", "kernel"], "repeats": 7, "warmup": 2,
         "e2e_height": 360, "e2e_seconds": 2.0}


def default_backends(gpu: bool) -> list[str]:
    """What a bench compares unless told otherwise: the GPU's eager path, or on a CPU the
    eager path and auto's choice (cpu, and openvino when it is installed); others by name."""
    from realtime.engine import backends
    if gpu:
        return ["cuda"]
    return [name for name in ("cpu", "openvino") if name in backends.available()]


def default_precisions(gpu: bool) -> list[str]:
    return ["fp16", "fp32"] if gpu else ["fp32"]


def main(args) -> int:
    for name in ("models", "backends", "precisions", "impls"):
        value = getattr(args, name)
        if isinstance(value, str):
            setattr(args, name, [v for v in value.split(",") if v])
    for name in ("batches", "sizes"):
        value = getattr(args, name)
        if isinstance(value, str):
            setattr(args, name, [int(v) for v in value.split(",") if v])
    unknown = [i for i in args.impls if i not in IMPLS]
    if unknown:
        raise ValueError(f"unknown impl {unknown[0]!r}: choose from {', '.join(IMPLS)}")
    from realtime.engine.backends import PRECISIONS
    unknown = [p for p in args.precisions if p not in PRECISIONS]
    if unknown:
        raise ValueError(f"unknown precision {unknown[0]!r}: choose from {', '.join(PRECISIONS)}")
    bad = [s for s in args.sizes if s <= 0 or s % 32]
    if bad:
        raise ValueError(f"sizes must be positive multiples of 32, got {bad[0]}")
    if args.e2e_height and args.e2e_height < 64:
        raise ValueError(f"--e2e-height must be 0 (no end-to-end run) or at least 64, got "
                         f"{args.e2e_height}")
    if args.compare and not Path(args.compare).is_file():
        raise FileNotFoundError(f"{args.compare}: no such file to compare with")
    result = run(args)
    print(markdown(result["results"]))
    if result["end_to_end"]:
        print()
        print(markdown_e2e(result["end_to_end"]))
    json_path = Path(args.json)
    write_json(json_path, result)
    plot_path = Path(args.plot) if args.plot else json_path.with_suffix(".png")
    if any(r.get("fps") for r in result["results"]):
        plot(result, plot_path)
        print(f"\nresults: {json_path}; plot: {plot_path}")
    else:
        print(f"\nresults: {json_path}")
    if args.compare:
        print()
        print(compare(result, json.loads(Path(args.compare).read_text())))
    failed = [r for r in result["results"] if "error" in r]
    if failed and len(failed) == len(result["results"]):
        print(f"error: every case failed, e.g. {failed[0]['error']}", file=sys.stderr)
        return 1
    return 0
