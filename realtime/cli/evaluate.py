"""``python -m realtime evaluate``: flags around ``realtime.evaluation``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from realtime.pipeline.alerts import AlertSettings
    hold = AlertSettings().hold
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="annotate result folders (OUT/<stem>/ with frames.jsonl and masks.mkv)")
    p.add_argument("--truth", nargs="+", required=True, metavar="TRUTH",
                   help="COCO ground truth per frame: a folder with <stem>.truth.json for every "
                        "run (what `m2snet phantom --procedure` writes), or one file per run "
                        "in the same order")
    p.add_argument("--out", metavar="REPORT.json",
                   help="write the whole report here (TRUE-Colon's tiers in full, per-lesion "
                        "latencies, pixel metrics)")
    p.add_argument("--alert", metavar="K/N",
                   help="score the alerts this filter setting would have raised (replayed "
                        "over the runs' own masks) instead of the alerts the runs recorded")
    p.add_argument("--alert-hold", type=int, default=hold, metavar="M",
                   help="with --alert: masks in a row without a polyp that lower it "
                        f"(default {hold})")
    p.add_argument("--alert-sure", metavar="P/M",
                   help="with --alert: also raise it at once when M masks in a row show a "
                        "region of mean probability >= P ('off': never; default as annotate)")
    p.add_argument("--no-pixels", action="store_true",
                   help="leave out the pixel metrics (they decode every mask)")


def run(args: argparse.Namespace) -> int:
    from m2snet.files import write_json
    from realtime.evaluation.report import evaluate, match_truth, table

    from realtime.pipeline.alerts import AlertSettings
    alerts = (AlertSettings.parse(args.alert, args.alert_hold, args.alert_sure)
              if args.alert else None)
    for folder in args.runs:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"{folder}: no such result folder")
    pairs = match_truth([Path(r) for r in args.runs], [Path(t) for t in args.truth])
    report = evaluate(pairs, pixels=not args.no_pixels, alerts=alerts)
    print(table(report))
    if args.out:
        write_json(args.out, report)
        print(f"report: {args.out}")
    return 0
