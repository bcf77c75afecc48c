"""What every command shares: the model and runtime flags (same names, same meaning
everywhere) and building the Segmenter from them."""

from __future__ import annotations

import argparse
from pathlib import Path


def backend_names() -> tuple[str, ...]:
    from realtime.engine import backends
    return backends.names()


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and runtime")
    group.add_argument("--weights", help="checkpoint: ours or the authors' .pth (default: the "
                                         "bundled phantom-trained demo model)")
    names = backend_names()
    group.add_argument("--backend", default="auto",
                       help=f"{names[0]} (default: the fastest here), {', '.join(names[1:])}")
    group.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"),
                       help="default: fp32 on the CPU, fp16 on a GPU; bf16 and int8 with "
                            "backend openvino (int8: quantized on first use, then cached)")
    group.add_argument("--calib", metavar="SOURCE",
                       help="int8: a video or image folder to calibrate the quantization on "
                            "(default: a phantom procedure)")
    group.add_argument("--size", type=int, help="network input side, a multiple of 32 "
                                                "(default: the checkpoint's)")
    group.add_argument("--threshold", type=float, default=0.5,
                       help="probability above which a pixel is polyp (default 0.5)")


def add_alert_arguments(parser: argparse.ArgumentParser) -> None:
    from realtime.pipeline.alerts import AlertSettings
    default = AlertSettings()
    group = parser.add_argument_group("alert (the same filter live and offline)")
    group.add_argument("--alert", default=default.rule, metavar="K/N",
                       help=f"raise the alert when K of the last N masks show a polyp (default "
                            f"{default.rule}, chosen on phantom procedures: see the README)")
    group.add_argument("--alert-sure", default=default.sure, metavar="P/M",
                       help="or at once when M masks in a row show a region whose mean "
                            f"probability is at least P ('off': only K/N raises; default "
                            f"{default.sure})")
    group.add_argument("--alert-hold", type=int, default=default.hold, metavar="M",
                       help=f"keep it up until M masks in a row show none (default "
                            f"{default.hold})")


def alert_settings(args: argparse.Namespace):
    from realtime.pipeline.alerts import AlertSettings
    return AlertSettings.parse(args.alert, args.alert_hold, args.alert_sure)


def next_free(path: str | Path) -> Path:
    """``path`` if nothing has that name yet, else the first free of path2, path3, ... (a
    file keeps its suffix: demo.mp4, demo2.mp4): earlier results are never overwritten."""
    path = Path(path)
    number = 2
    candidate = path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}{number}{path.suffix}")
        number += 1
    return candidate


def segmenter_options(args: argparse.Namespace, absolute: bool = False) -> dict:
    """The Segmenter's arguments from the runtime flags; ``absolute``: paths made absolute
    (for worker processes that build it elsewhere, with another working directory)."""
    def path(name):
        value = getattr(args, name, None)
        return str(Path(value).resolve()) if value is not None and absolute else value
    return {"weights": path("weights"), "backend": args.backend,
            "precision": args.precision, "size": args.size, "threshold": args.threshold,
            "calibration": path("calib")}


def make_segmenter(args: argparse.Namespace):
    from realtime.engine import Segmenter
    return Segmenter(**segmenter_options(args))
