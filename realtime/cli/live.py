"""``python -m realtime live`` and ``demo``: flags around the live pipeline."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from m2snet.files import write_json
from realtime.cli.common import (add_alert_arguments, add_runtime_arguments, alert_settings,
                                 make_segmenter, next_free)
from realtime.io.overlay import OverlayStyle
from realtime.io.sinks import (MaskSink, NullSink, RecordSink, WindowSink, checked_output,
                               display_available)
from realtime.io.sources import SourceOptions, open_source, source_kind
from realtime.pipeline.live import LiveOptions, LivePipeline
from realtime.pipeline.stats import format_summary

log = logging.getLogger("realtime.live")


def add_arguments(parser: argparse.ArgumentParser, with_source: bool = True) -> None:
    add_runtime_arguments(parser)
    add_alert_arguments(parser)
    add_live_arguments(parser, with_source)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=1, help="which synthetic colon to fly "
                                                            "through (default 1)")
    add_arguments(parser, with_source=False)


def add_live_arguments(parser: argparse.ArgumentParser, with_source: bool = True) -> None:
    if with_source:
        parser.add_argument("source", help="video file, image folder or glob, stream URL "
                                           "(rtsp, rtmp, http(s), udp, tcp, srt), /dev/videoN "
                                           "or a camera index, or synthetic[:SEED]")
    out = parser.add_argument_group("output")
    out.add_argument("--no-display", action="store_true", help="no window")
    out.add_argument("--fullscreen", action="store_true", help="start the window full screen")
    out.add_argument("--record", metavar="PATH.mp4",
                     help="record the overlay (fragmented MP4: playable even after a crash)")
    out.add_argument("--masks", metavar="PATH.mkv",
                     help="store every segmented frame's mask losslessly (FFV1)")
    out.add_argument("--probabilities", action="store_true",
                     help="--masks holds probabilities 0..255 instead of binary 0/255")
    out.add_argument("--stats", metavar="FILE.json", help="write the run's statistics here")
    run = parser.add_argument_group("run")
    run.add_argument("--duration", "--seconds", type=float, metavar="S",
                     help="stop after S seconds")
    run.add_argument("--sync", action="store_true",
                     help="show each segmented frame with its own mask (frame rate = model "
                          "rate) instead of every source frame with the newest mask")
    run.add_argument("--no-pace", action="store_true",
                     help="read files as fast as they decode instead of at their frame rate")
    run.add_argument("--loop", action="store_true", help="play a video file over and over")
    look = parser.add_argument_group("overlay")
    look.add_argument("--alpha", type=float, default=0.35,
                      help="mask fill opacity, 0 (none) to 1 (default 0.35)")
    look.add_argument("--no-boxes", action="store_true", help="no boxes or confidences")
    look.add_argument("--no-hud", action="store_true", help="no status line")
    look.add_argument("--min-area", type=int, default=64,
                      help="regions below this many pixels get no box (still drawn; default 64)")
    src = parser.add_argument_group("source")
    src.add_argument("--fps", type=float, help="frame rate of image folders and the synthetic "
                                               "source (default 30)")
    src.add_argument("--synthetic-size", type=int, default=352,
                     help="synthetic frame side (default 352)")
    src.add_argument("--camera-size", metavar="WxH", help="capture device frame size")
    src.add_argument("--camera-fps", type=float, help="capture device frame rate")
    src.add_argument("--camera-format", metavar="FOURCC", help="capture pixel format, e.g. MJPG")
    src.add_argument("--timeout", type=float, default=5.0,
                     help="seconds without data before a stream counts as cut (default 5)")
    src.add_argument("--reconnect", type=int, default=5, metavar="N",
                     help="connection attempts before a stream is given up (default 5)")


def source_options(args: argparse.Namespace) -> SourceOptions:
    size = None
    if args.camera_size:
        try:
            size = tuple(int(v) for v in args.camera_size.lower().split("x"))
            assert len(size) == 2
        except (ValueError, AssertionError):
            raise ValueError(f"--camera-size takes WIDTHxHEIGHT, got {args.camera_size!r}") from None
    return SourceOptions(fps=args.fps, synthetic_size=args.synthetic_size, camera_size=size,
                         camera_fps=args.camera_fps, camera_format=args.camera_format,
                         open_timeout=max(args.timeout, 10.0), read_timeout=args.timeout,
                         reconnect_attempts=max(1, args.reconnect), loop=args.loop)


def run_live(args: argparse.Namespace) -> int:
    if not 0 <= args.alpha <= 1:
        raise ValueError(f"--alpha must lie in 0..1, got {args.alpha}")
    alert_settings(args)  # a bad --alert fails now, not after the model has loaded
    # everything that can be checked is checked before the model loads (seconds on a first start)
    sinks = []
    if not args.no_display:
        sinks.append(WindowSink(fullscreen=args.fullscreen))  # fails early without a display
    record = RecordSink(Path(args.record)) if args.record else None
    mask_sink = MaskSink(Path(args.masks), args.probabilities) if args.masks else None
    if args.stats:
        checked_output(Path(args.stats), (".json",), "statistics are JSON")
    source_kind(args.source)  # a mistyped source fails now, not after the model has loaded
    segmenter = make_segmenter(args)
    source = open_source(args.source, source_options(args))
    if record is not None:
        record.rate = source.fps or 30.0
        sinks.append(record)
    if not sinks:
        sinks.append(NullSink())
    segmenter.warmup(iterations=1)
    pipeline = LivePipeline(source, segmenter, sinks, live_options(args), mask_sink)
    code = 0
    try:
        summary = pipeline.run()
    except KeyboardInterrupt:
        summary, code = pipeline.summary(), 130
        summary["interrupted"] = True
        print("interrupted: everything written so far is complete and playable", flush=True)
    _report(summary, record, mask_sink, args.stats)
    if summary.get("source_lost") and code == 0:
        print(f"error: the source was lost: {summary['source_lost']}", file=sys.stderr)
        code = 1
    return code


def _report(summary: dict, record, mask_sink, stats_path) -> None:
    print(format_summary(summary), flush=True)
    if record is not None:
        print(f"recording: {record.path} ({record.frames} frames)")
    if mask_sink is not None:
        print(f"masks: {mask_sink.path}")
    if stats_path:
        write_json(stats_path, summary)
        print(f"statistics: {stats_path}")


def live_options(args: argparse.Namespace) -> LiveOptions:
    return LiveOptions(sync=args.sync, pace=not args.no_pace, duration=args.duration,
                       hud=not args.no_hud, min_area=args.min_area,
                       alerts=alert_settings(args),
                       style=OverlayStyle(alpha=args.alpha, boxes=not args.no_boxes,
                                          scores=not args.no_boxes))


def run_demo(args: argparse.Namespace) -> int:
    """The synthetic stream with the bundled model: a window when there is a display,
    otherwise a recording under runs/demo/."""
    headless = not display_available() or args.record
    args.source = f"synthetic:{args.seed}"
    args.no_display = bool(headless)
    if headless:
        if not args.record:  # a new file each run: runs/demo/demo.mp4, demo2.mp4, ...
            Path("runs/demo").mkdir(parents=True, exist_ok=True)
            args.record = str(next_free("runs/demo/demo.mp4"))
        args.duration = args.duration or 10.0
        print(f"no display: recording {args.duration:g} s of the overlay to {args.record}",
              flush=True)
    return run_live(args)
