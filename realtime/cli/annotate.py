"""``python -m realtime annotate``: every input in turn; one failing input does not stop
the others (it is reported in one line and the exit code is 1)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from m2snet.errors import one_line
from realtime.cli.common import add_runtime_arguments, make_segmenter
from realtime.io.overlay import OverlayStyle
from realtime.pipeline.offline import (AnnotateOptions, InputSpec, annotate_one, expand_inputs,
                                       is_complete)

log = logging.getLogger("realtime.annotate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="video files, image folders, or globs (quote them)")
    parser.add_argument("--out", required=True, help="output folder: one subfolder per input")
    add_runtime_arguments(parser)
    parser.add_argument("--batch", type=int, default=1, help="frames per inference (default 1)")
    parser.add_argument("--mask-values", choices=("binary", "probabilities"), default="binary",
                        help="masks.mkv holds 0/255 masks (default) or probabilities 0..255")
    parser.add_argument("--png-masks", action="store_true", help="also masks/NNNNNN.png")
    parser.add_argument("--coco", action="store_true",
                        help="also coco.json: RLE annotations of the frames with polyps")
    parser.add_argument("--fps", type=float, default=30.0,
                        help="frame rate given to image sequences (default 30)")
    parser.add_argument("--resume", action="store_true",
                        help="skip inputs whose outputs are already complete")
    parser.add_argument("--alpha", type=float, default=0.35, help="overlay fill opacity")
    parser.add_argument("--no-boxes", action="store_true", help="no boxes or confidences")
    parser.add_argument("--min-area", type=int, default=64,
                        help="regions below this many pixels are not listed or boxed")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    if args.batch < 1:
        raise ValueError(f"--batch must be at least 1, got {args.batch}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    inputs = expand_inputs(args.inputs)
    options = AnnotateOptions(batch=args.batch, mask_values=args.mask_values,
                              png_masks=args.png_masks, coco=args.coco, image_fps=args.fps,
                              min_area=args.min_area, progress=not args.quiet,
                              style=OverlayStyle(alpha=args.alpha, boxes=not args.no_boxes,
                                                 scores=not args.no_boxes))
    segmenter = make_segmenter(args)
    complete, failed = [], []
    for spec in inputs:
        if not isinstance(spec, InputSpec):
            print(f"error: {spec}", file=sys.stderr, flush=True)
            failed.append(str(spec))
            continue
        if args.resume and is_complete(out / spec.stem):
            print(f"{spec.stem}: already complete, skipped", flush=True)
            complete.append(spec.stem)
            continue
        try:
            summary = annotate_one(spec, segmenter, out, options)
        except KeyboardInterrupt:
            print(f"interrupted during {spec.source}: nothing of it was kept; complete: "
                  f"{', '.join(complete) or 'none'}", file=sys.stderr, flush=True)
            return 130
        except Exception as error:  # noqa: BLE001  (one input fails alone)
            if args.debug:
                log.exception("%s failed", spec.source)
            message = one_line(error)
            if spec.source not in message:
                message = f"{spec.source}: {message}"
            print(f"error: {message}", file=sys.stderr, flush=True)
            failed.append(spec.source)
            continue
        t = summary["timings"]
        print(f"{spec.stem}: {summary['frames']} frames ({summary['frames_with_polyp']} with "
              f"polyps, {summary['damaged_packets_skipped']} damaged packets skipped) at "
              f"{t['fps']} frames/s -> {summary['output']}", flush=True)
        complete.append(spec.stem)
    print(f"{len(complete)} of {len(inputs)} inputs complete in {out}"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0
