"""``python -m realtime`` (installed as ``m2snet-rt``): the runtime's command line, one module
per command (``live`` with ``demo``, ``annotate``, ``evaluate``, ``bench``, ``export``,
``app``) and the flags they share (``common``).

Exit codes: 0 success, 1 the run failed (one line on stderr; ``--debug`` adds the
traceback), 2 usage error, 130 interrupted (Ctrl-C) after closing every output.
"""

from __future__ import annotations

import argparse
import logging

from m2snet.errors import program_name, run_reporting_errors


COMMANDS = {  # name: (module, its adder of flags, its runner, one-line help, description)
    "demo": ("live", "add_demo_arguments", "run_demo",
             "live overlay on the built-in synthetic colonoscopy stream",
             "The synthetic colonoscopy stream segmented live by the bundled demo model: in a "
             "window when there is a display, otherwise recorded to runs/demo/demo.mp4 (10 s; "
             "later runs demo2.mp4, ...)."),
    "live": ("live", "add_arguments", "run_live",
             "segment a file, stream, camera or folder live",
             "Capture -> segment -> overlay -> window/recording at the source's frame rate. "
             "Window keys: q/Esc quit, space pause, o overlay, h HUD, f full screen."),
    "annotate": ("annotate", "add_arguments", "run",
                 "every frame of recorded videos: overlay, lossless masks, a per-frame log and "
                 "a summary",
                 "Annotate every frame of each INPUT into OUT/<stem>/: overlay.mp4 (input "
                 "timestamps), masks.mkv (lossless), frames.jsonl, summary.json. A bad input "
                 "fails alone."),
    "bench": ("bench", "add_arguments", "run",
              "frames per second over backends, precisions, batches, sizes and subtraction "
              "units, plus end-to-end runs",
              "Model grid (warm-up, synchronized timing, median and p99, outputs checked "
              "against the authors' formulation) and end-to-end annotate/live runs on a "
              "generated video. Writes JSON and a PNG plot, prints Markdown tables."),
    "evaluate": ("evaluate", "add_arguments", "run",
                 "score annotate results against per-frame ground truth: pixel metrics and "
                 "the clinical tiers (TRUE-Colon) for raw masks and alerts",
                 "Score annotate result folders against COCO ground truth per frame (e.g. "
                 "`m2snet phantom --procedure`): frame TPR/FPR, false-alert episodes per "
                 "minute, lesion latency, TRUE-Colon's tiers, for the raw masks and for the "
                 "alerts side by side."),
    "export": ("export", "add_arguments", "run",
               "a checkpoint as ONNX, OpenVINO IR (fp32, bf16, int8), TorchScript, "
               "ExportedProgram or a TensorRT engine, checked against float32",
               "Write a deployment artefact and its provenance (PATH.json: weights hash, "
               "input normalization, versions), then run it in its own runtime against the "
               "float32 network on phantom frames with a polyp (mask Dice >= 0.98, mDice drop "
               "<= 0.01, else exit 1). --verify checks an existing artefact again."),
    "app": ("app", "add_arguments", "run",
            "the web app: annotate uploads, watch a live stream, run the benchmark in a browser",
            "Serve the web app (Gradio). Listens on 127.0.0.1 unless told otherwise; uploads "
            "and results stay in --workdir."),
}


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog=program_name("python -m realtime"),
                                     description="Real-time polyp segmentation in video.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on failure")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, add, run, summary, description) in COMMANDS.items():
        commands = importlib.import_module(f"realtime.cli.{module}")
        p = sub.add_parser(name, help=summary, description=description)
        getattr(commands, add)(p)
        p.set_defaults(run=getattr(commands, run))
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        return 130
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_reporting_errors(args)
