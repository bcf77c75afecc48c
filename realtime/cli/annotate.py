"""``python -m realtime annotate``: every input in turn; one failing input does not stop
the others (it is reported in one line and the exit code is 1)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from m2snet.errors import one_line
from realtime.cli.common import (add_alert_arguments, add_runtime_arguments, alert_settings,
                                 make_segmenter, next_free)
from realtime.io.sinks import checked_folder
from realtime.errors import SourceError
from realtime.io.overlay import OverlayStyle
from realtime.pipeline.offline import (AnnotateOptions, InputSpec, annotate_one, expand_inputs,
                                       is_complete)

log = logging.getLogger("realtime.annotate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="video files, image folders, or globs (quote them)")
    parser.add_argument("--out", help="output folder, one subfolder per input (default: a new "
                                      "numbered folder, runs/annotate, runs/annotate2, ...)")
    add_runtime_arguments(parser)
    add_alert_arguments(parser)
    parser.add_argument("--batch", type=int, default=1, help="frames per inference (default 1)")
    parser.add_argument("--mask-values", choices=("binary", "probabilities"), default="binary",
                        help="masks.mkv holds 0/255 masks (default) or probabilities 0..255")
    parser.add_argument("--png-masks", action="store_true", help="also masks/NNNNNN.png")
    parser.add_argument("--coco", action="store_true",
                        help="also coco.json (a COCO dataset: every frame an image, id = "
                             "frame index + 1, the regions as RLE annotations) and "
                             "coco_results.json (the regions as a results list, for "
                             "pycocotools' loadRes)")
    parser.add_argument("--fps", type=float, default=30.0,
                        help="frame rate given to image sequences (default 30)")
    parser.add_argument("--resume", action="store_true",
                        help="skip inputs whose outputs are already complete")
    parser.add_argument("--alpha", type=float, default=0.35,
                        help="overlay fill opacity, 0..1 (default 0.35)")
    parser.add_argument("--no-boxes", action="store_true", help="no boxes or confidences")
    parser.add_argument("--min-area", type=int, default=64,
                        help="regions below this many pixels are not listed or boxed "
                             "(default 64)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _checked(spec, image_fps: float):
    """The input, or the error that opening it gives."""
    if not isinstance(spec, InputSpec):
        return spec
    try:
        spec.open(image_fps).close()
    except SourceError as error:
        return error
    return spec


def run(args: argparse.Namespace) -> int:
    if args.batch < 1:
        raise ValueError(f"--batch must be at least 1, got {args.batch}")
    if args.out is None and args.resume:
        raise ValueError("--resume needs --out: the folder of the run to continue")
    out = checked_folder(Path(args.out) if args.out else next_free("runs/annotate"))
    # every input is opened once before the model loads: bad ones fail in seconds, in order
    inputs = [_checked(spec, args.fps) for spec in expand_inputs(args.inputs)]
    options = AnnotateOptions(batch=args.batch, mask_values=args.mask_values,
                              png_masks=args.png_masks, coco=args.coco, image_fps=args.fps,
                              min_area=args.min_area, progress=not args.quiet,
                              alerts=alert_settings(args),
                              style=OverlayStyle(alpha=args.alpha, boxes=not args.no_boxes,
                                                 scores=not args.no_boxes))
    failed = [str(spec) for spec in inputs if not isinstance(spec, InputSpec)]
    for message in failed:
        print(f"error: {message}", file=sys.stderr, flush=True)
    todo = [spec for spec in inputs if isinstance(spec, InputSpec)]
    if not todo:
        print(f"0 of {len(inputs)} inputs complete", flush=True)
        return 1
    segmenter = make_segmenter(args)
    complete: list[str] = []
    cut_short: list[str] = []
    for spec in todo:
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
              f"polyps, {summary['damaged_packets_skipped']} damaged packets skipped"
              + (f", turned {summary['rotation']} degrees upright" if summary["rotation"] else "")
              + f") at {t['fps']} frames/s -> {summary['output']}", flush=True)
        if summary["incomplete"]:  # (the source has warned)
            cut_short.append(spec.stem)
        complete.append(spec.stem)
    print(f"{len(complete)} of {len(inputs)} inputs complete in {out}"
          + (f"; ended early: {', '.join(cut_short)}" if cut_short else "")
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0
