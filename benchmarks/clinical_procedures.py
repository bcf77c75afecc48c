"""What a clinician would judge: held-out phantom procedures annotated and scored with
TRUE-Colon, raw masks against alerts.

    python benchmarks/clinical_procedures.py --json benchmarks/results/clinical_procedures.json

Writes the procedures (seeds no test and no training run uses) unless they exist, annotates
each with ``m2snet-rt annotate`` (every frame), scores them with ``m2snet-rt evaluate``'s code
and prints the table. ``--weights`` takes several checkpoints, compared on the same videos;
``--alerts`` several filter settings, replayed over each model's masks.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from realtime.bench.environment import describe_environment, write_result
from realtime.evaluation.report import evaluate, table
from realtime.pipeline.alerts import AlertSettings

ROOT = Path(__file__).resolve().parents[1]


def sh(*args) -> None:
    subprocess.run([sys.executable, *map(str, args)], check=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="9101,9102,9103")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", type=int, default=352)
    parser.add_argument("--weights", default="demo", help="comma list: demo or checkpoints")
    default = AlertSettings()
    parser.add_argument("--alerts", default=f"{default.rule}:{default.hold}",
                        help="comma list of K/N:hold[:P/M|off] (P/M: the sure raise, "
                             f"{default.sure} when left out)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--model-size", type=int,
                        help="network input side (default: each checkpoint's own)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "clinical")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    videos = args.work / "procedures"
    names = [f"procedure{seed}" for seed in args.seeds.split(",")]
    for seed, name in zip(args.seeds.split(","), names):
        if not (videos / f"{name}.truth.json").is_file():
            sh("-m", "m2snet", "phantom", "--procedure", args.seconds, "--seed", seed,
               "--size", args.size, "--out", videos, "--quiet")
    rows = []
    for number, weights in enumerate(args.weights.split(",")):
        out = args.work / f"model{number}"
        inputs = [videos / f"{name}.mp4" for name in names]
        started = time.perf_counter()
        sh("-m", "realtime", "annotate", *inputs, "--out", out, "--backend", args.backend,
           *([] if weights == "demo" else ["--weights", weights]),
           *([] if args.model_size is None else ["--size", args.model_size]), "--quiet")
        seconds = time.perf_counter() - started
        pairs = [(out / name, videos / f"{name}.truth.json") for name in names]
        pixels = None  # the masks' pixel metrics do not depend on the alert setting
        for text in args.alerts.split(","):
            rule, hold, *sure = text.split(":")
            settings = AlertSettings.parse(rule, int(hold), *sure)
            report = evaluate(pairs, pixels=pixels is None, alerts=settings)
            pixels = report["pixels"] = report.get("pixels", pixels)
            print(f"\n## {weights}, alert {rule} hold {hold} sure {settings.sure}\n\n"
                  f"{table(report)}")
            rows.append({"weights": weights, "alert": text, "annotate_s": round(seconds, 1),
                         "report": report})
    write_result(args.json, {"benchmark": "clinical_procedures", "command": " ".join(sys.argv),
                             "environment": describe_environment(), "procedures": names,
                             "seconds_each": args.seconds, "rows": rows})


if __name__ == "__main__":
    main()
