"""``python -m realtime annotate``: every input in turn; one failing input does not stop
the others (it is reported in one line and the exit code is 1)."""

from __future__ import annotations

import argparse
import logging
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from m2snet.errors import one_line
from realtime.cli.common import (add_alert_arguments, add_runtime_arguments, alert_settings,
                                 make_segmenter, next_free, segmenter_options)
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
    cluster = parser.add_argument_group(
        "distributed (Ray): chunks of the inputs segmented by workers across a cluster; "
        "outputs identical to a single process")
    cluster.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                         help="'local' (the default when given alone): a Ray cluster on this "
                              "machine; 'auto': the cluster this machine belongs to; or the "
                              "head's address (host:6379, ray://host:10001)")
    cluster.add_argument("--workers", type=int,
                         help="workers, each holding one model (default: one per GPU of the "
                              "cluster, else one per --cpus-per-worker CPUs)")
    cluster.add_argument("--cpus-per-worker", type=float, default=1.0,
                         help="CPUs each worker reserves and uses (default 1)")
    cluster.add_argument("--gpus-per-worker", type=float,
                         help="GPUs each worker reserves (default 1 where the cluster has GPUs, "
                              "else 0; 0.5 puts two workers on a GPU)")
    cluster.add_argument("--writers", type=int, default=1,
                         help="inputs this process writes at once, one thread each (default 1; "
                              "writing takes about a core per input: raise it where many fast "
                              "workers wait for one writer)")
    cluster.add_argument("--chunk-frames", type=int, default=900,
                         help="videos are cut at keyframes into chunks of at least this many "
                              "frames, spread over the workers (default 900; 0: never cut)")


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
    settings = _cluster_settings(args)  # (bad cluster flags fail before anything runs)
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
    complete: list[str] = []
    for spec in todo:
        if args.resume and is_complete(out / spec.stem):
            print(f"{spec.stem}: already complete, skipped", flush=True)
            complete.append(spec.stem)
    todo = [spec for spec in todo if spec.stem not in complete]
    runner = _Runner(args, settings, options, todo)
    cut_short: list[str] = []
    try:
        code = _annotate_all(args, runner, todo, out, complete, failed, cut_short)
    finally:
        runner.close()
    if code:
        return code  # interrupted: 130, whatever failed before
    print(f"{len(complete)} of {len(inputs)} inputs complete in {out}"
          + (f"; ended early: {', '.join(cut_short)}" if cut_short else "")
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


class _Runner:
    """One process with one Segmenter, or a Ray cluster's workers (``--ray``)."""

    def __init__(self, args, settings, options: AnnotateOptions, todo: list[InputSpec]):
        self.options, self.cluster = options, None
        if settings is not None and todo:
            from realtime.distributed.annotate import RayAnnotator
            self.cluster = RayAnnotator(settings, segmenter_options(args, absolute=True),
                                        options, todo)
        elif todo:
            self.segmenter = make_segmenter(args)

    @property
    def writers(self) -> int:
        return self.cluster.settings.writers if self.cluster is not None else 1

    def interrupt(self) -> None:
        if self.cluster is not None:
            self.cluster.interrupt()

    def annotate(self, spec: InputSpec, out: Path) -> dict:
        if self.cluster is not None:
            return self.cluster.annotate(spec, out)
        return annotate_one(spec, self.segmenter, out, self.options)

    def say(self, line: str, error: bool = False) -> None:
        if self.cluster is not None:
            self.cluster.say(line, error)
        else:
            print(line, file=sys.stderr if error else sys.stdout, flush=True)

    def close(self) -> None:
        if self.cluster is not None:
            workers = self.cluster.report()
            self.cluster.close()
            for name, row in workers.items():
                print(f"worker {name}: {row['frames']} frames in {row['chunks']} chunks, "
                      f"{row['fps']} frames/s while busy", flush=True)


def _annotate_all(args, runner: _Runner, todo: list[InputSpec], out: Path,
                  complete: list[str], failed: list[str], cut_short: list[str]) -> int:
    """Every input (on a cluster up to --writers at once, in input order); 130 when
    interrupted, else 0 (failures are in ``failed``)."""
    writing: list[InputSpec] = []

    def one(spec: InputSpec):
        writing.append(spec)
        try:
            return runner.annotate(spec, out), None
        except Exception as error:  # noqa: BLE001  (one input fails alone)
            return None, error
        finally:
            writing.remove(spec)

    def report(spec: InputSpec, summary: dict | None, error: Exception | None) -> None:
        if error is not None:
            if args.debug:
                log.error("%s failed", spec.source, exc_info=error)
            message = one_line(error)
            if spec.source not in message:
                message = f"{spec.source}: {message}"
            runner.say(f"error: {message}", error=True)
            failed.append(spec.source)
            return
        t = summary["timings"]
        runner.say(f"{spec.stem}: {summary['frames']} frames ({summary['frames_with_polyp']} "
                   f"with polyps, {summary['damaged_packets_skipped']} damaged packets skipped"
                   + (f", turned {summary['rotation']} degrees upright" if summary["rotation"]
                      else "")
                   + f") at {t['fps']} frames/s -> {summary['output']}")
        if summary["incomplete"]:  # (the source has warned)
            cut_short.append(spec.stem)
        complete.append(spec.stem)

    if runner.writers == 1:
        for spec in todo:
            try:
                report(spec, *one(spec))
            except KeyboardInterrupt:
                return _interrupted([spec], complete)
        return 0
    with ThreadPoolExecutor(runner.writers, thread_name_prefix="writer") as pool:
        futures = {pool.submit(one, spec): spec for spec in todo}
        try:
            for future in as_completed(futures):
                report(futures[future], *future.result())
        except KeyboardInterrupt:
            stopped = list(writing)
            runner.interrupt()
            for future in futures:
                future.cancel()
            pool.shutdown(wait=True)
            return _interrupted(stopped, complete)
    return 0


def _interrupted(specs: list[InputSpec], complete: list[str]) -> int:
    print(f"interrupted during {', '.join(spec.source for spec in specs) or 'start-up'}: "
          f"nothing of {'it' if len(specs) == 1 else 'them'} was kept; complete: "
          f"{', '.join(complete) or 'none'}", file=sys.stderr, flush=True)
    return 130


def _cluster_settings(args: argparse.Namespace):
    if args.ray is None:
        for flag in ("workers", "gpus_per_worker") + (("writers",) if args.writers != 1 else ()):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag.replace('_', '-')} needs --ray")
        return None
    from realtime.distributed.cluster import ClusterSettings
    return ClusterSettings(args.ray, args.workers, args.cpus_per_worker, args.gpus_per_worker,
                           args.chunk_frames, args.writers)
