"""``python -m realtime export``: flags around ``realtime.export``."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from realtime.export import FORMATS
    from realtime.export.check import CHECK_FRAMES
    p.add_argument("--weights", help="checkpoint: ours or the authors' .pth (default: the "
                                     "bundled demo model)")
    p.add_argument("--format", choices=tuple(FORMATS), default="onnx",
                   help="onnx (ONNX Runtime, TensorRT's trtexec), openvino (IR: fp32, bf16, "
                        "int8), torchscript, exported-program (torch.export .pt2), engine "
                        "(TensorRT, needs a GPU and torch-tensorrt); default onnx")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"),
                           default="fp32", help="default fp32")
    precision.add_argument("--half", dest="precision", action="store_const", const="fp16",
                           help="same as --precision fp16 (engine only)")
    precision.add_argument("--int8", dest="precision", action="store_const", const="int8",
                           help="same as --precision int8 (openvino: the encoder quantized by NNCF, "
                                "post-training)")
    p.add_argument("--calib", metavar="SOURCE",
                   help="int8: a video or image folder to calibrate on (default: a phantom "
                        "procedure); use frames like the ones the model will see")
    p.add_argument("--calib-frames", type=int, metavar="N",
                   help="int8: how many frames to calibrate on (default 64)")
    p.add_argument("--size", type=int, help="input side, a multiple of 32 (default: the "
                                            "checkpoint's)")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="leave the batch dimension open (default: batch 1)")
    p.add_argument("--out", metavar="PATH",
                   help="artefact path (default exports/<weights>-<size>-<precision><suffix>); "
                        "the provenance goes beside it as PATH.json")
    p.add_argument("--check-frames", type=int, default=CHECK_FRAMES, metavar="N",
                   help=f"phantom frames with a polyp for the accuracy check (default "
                        f"{CHECK_FRAMES})")
    p.add_argument("--verify", metavar="ARTEFACT",
                   help="instead of exporting: check an existing artefact against its "
                        "provenance and the float32 network (--weights if not the demo model)")


def run(args: argparse.Namespace) -> int:
    from realtime.export import export, provenance_path, verify
    from realtime.export.check import summary_line
    if args.verify:
        result = verify(args.verify, args.weights, args.check_frames)
        print(f"{args.verify}: matches its provenance; {summary_line(result)}")
        return 0 if result["passed"] else 1
    out, provenance = export(args.weights, args.format, args.out, args.precision, args.size,
                        args.dynamic_batch, args.calib, args.calib_frames, args.check_frames)
    files = ", ".join(provenance["files"])
    print(f"wrote {files} ({provenance['format']}, {provenance['precision']}, input "
          f"{'x'.join(map(str, provenance['input']['shape']))}) in "
          f"{provenance['export_seconds']} s; provenance: {provenance_path(out)}")
    print(summary_line(provenance["check"]))
    if not provenance["check"]["passed"]:
        print(f"export: {out} failed the accuracy gate (kept; its provenance says so)",
              file=sys.stderr)
        return 1
    return 0
