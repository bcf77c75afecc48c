"""Distributed annotation (``annotate --ray``) on this machine: throughput with 1 and 2 Ray
workers beside a single process, the cost of a chunk, and what those imply for N workers.

    python benchmarks/ray_scaling.py --json benchmarks/results/ray_scaling_cpu.json

Every configuration runs the real command (``python -m realtime annotate``) on the same
generated procedure, in interleaved rounds; the table gives medians. Measured per run:
- the command's wall time (Ray start, model loads, all of it) and the annotation's own wall
  time (first frame asked for to outputs renamed: ``summary.json`` timings.wall_s);
- each worker's frames per busy second (what one worker sustains);
- the stitcher's own seconds per frame: its wall minus the time it waited for workers
  (decoding the input once more, overlay, H.264 and FFV1 encoding, the frame log);
- the cost of a chunk: 1 worker cutting the video into many small chunks against few large
  ones, divided by the extra chunks (scheduling, seek, decoder restart, result transfer);
- the decoder's seek: opening a chunk and decoding its first frame against the sequential
  rate.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {  # name: (extra flags, environment)
    "single, 1 thread": ([], {"OMP_NUM_THREADS": "1"}),
    "single, all threads": ([], {}),
    "ray, 1 worker": (["--ray", "--workers", "1"], {}),
    "ray, 2 workers": (["--ray", "--workers", "2"], {}),
    "ray, 1 worker, small chunks": (["--ray", "--workers", "1"], {}),
}


def run(video: Path, out: Path, name: str, backend: str, chunk: int, small: int) -> dict:
    flags, env = CONFIGS[name]
    if flags:
        flags = [*flags, "--chunk-frames", str(small if "small" in name else chunk)]
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "realtime", "annotate", str(video), "--out",
                           str(out), "--backend", backend, "--quiet", *flags],
                          capture_output=True, text=True, env={**os.environ, **env})
    command_s = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{name}: {done.stderr.strip().splitlines()[-1]}")
    summary = json.loads((out / video.stem / "summary.json").read_text())
    t, spread = summary["timings"], summary.get("distributed", {})
    workers = [float(line.rsplit(", ", 1)[1].split()[0]) for line in done.stdout.splitlines()
               if line.startswith("worker ")]
    row = {"config": name, "frames": summary["frames"], "command_s": round(command_s, 2),
           "wall_s": t["wall_s"], "fps": t["fps"], "chunks": spread.get("chunks", 1),
           "worker_fps": workers}
    if spread:
        stitch = t["wall_s"] - spread["waited_for_workers_s"]
        row["stitch_ms_per_frame"] = round(1000 * stitch / summary["frames"], 2)
    return row


def seek_cost(video: Path, chunk: int) -> dict:
    import cv2  # noqa: F401  (before av)
    from realtime.io.chunks import ChunkSource, plan_chunks
    from realtime.io.sources import FileSource
    chunks = plan_chunks(str(video), chunk)
    first = []
    for c in chunks[1:]:
        began = time.perf_counter()
        source = ChunkSource(str(video), c)
        source.read()
        first.append(time.perf_counter() - began)
        source.close()
    began = time.perf_counter()
    count = sum(1 for _ in FileSource(str(video)))
    per_frame = (time.perf_counter() - began) / count
    return {"chunk_open_to_first_frame_ms": round(1000 * statistics.median(first), 2),
            "sequential_decode_ms_per_frame": round(1000 * per_frame, 3)}


def chunk_overheads(video: Path, chunk: int, backend: str) -> dict:
    """Ray's round trip for a call (scheduling), and a real chunk's result: its size on the
    wire and a round trip carrying it (transfer)."""
    import logging
    import pickle
    import ray
    from realtime.distributed.worker import ChunkJob, SegmentWorker
    from realtime.io.chunks import plan_chunks
    from realtime.io.inputs import InputSpec

    class Echo:
        def call(self, value=None):
            return value

    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)
    try:
        echo = ray.remote(num_cpus=0)(Echo).remote()
        ray.get(echo.call.remote())

        def round_trip(value=None) -> float:
            times = []
            for _ in range(30):
                began = time.perf_counter()
                ray.get(echo.call.remote(value))
                times.append(time.perf_counter() - began)
            return 1000 * statistics.median(times)

        plan = plan_chunks(str(video), chunk)
        job = ChunkJob(InputSpec(str(video), video.stem, "video"), plan[-1], 30.0, 1, 64, None,
                       False)
        result = SegmentWorker({"backend": backend}, 1).segment(job)
        return {"call_round_trip_ms": round(round_trip(), 2),
                "chunk_frames": len(result.frames),
                "chunk_result_kb": round(len(pickle.dumps(result)) / 1024, 1),
                "round_trip_with_chunk_result_ms": round(round_trip(result), 2)}
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="video length at 30 fps")
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--backend", default="openvino")
    parser.add_argument("--chunk-frames", type=int, default=300)
    parser.add_argument("--small-chunk-frames", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--overheads-only", action="store_true",
                        help="only the chunk costs (seek, scheduling, transfer), no runs")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from realtime.bench import procedure_video
    from realtime.bench.environment import cpu_name, write_result
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = procedure_video(Path(tmp) / "procedure.mp4", 30, args.seconds,
                                args.height * 16 // 9, args.height, keyint=30)
        for round_ in range(0 if args.overheads_only else args.rounds):
            for name in CONFIGS:
                row = run(video, Path(tmp) / f"out{len(rows)}", name, args.backend,
                          args.chunk_frames, args.small_chunk_frames)
                rows.append({"round": round_, **row})
                print(json.dumps(rows[-1]), flush=True)
        seek = {**seek_cost(video, args.small_chunk_frames),
                **chunk_overheads(video, args.chunk_frames, args.backend)}
    if args.overheads_only:
        print(json.dumps(seek))
        return
    table = {}
    for name in CONFIGS:
        mine = [r for r in rows if r["config"] == name]
        table[name] = {key: statistics.median(r[key] for r in mine)
                       for key in ("command_s", "wall_s", "fps", "stitch_ms_per_frame")
                       if key in mine[0]}
        table[name]["chunks"] = mine[0]["chunks"]
        speeds = [f for r in mine for f in r["worker_fps"]]
        table[name]["worker_fps"] = round(statistics.median(speeds), 2) if speeds else None
    few, many = table["ray, 1 worker"], table["ray, 1 worker, small chunks"]
    per_chunk = (many["wall_s"] - few["wall_s"]) / (many["chunks"] - few["chunks"])
    print("\n| configuration | chunks | annotate fps | wall s | command s | worker fps | "
          "stitch ms/frame |\n|---|---|---|---|---|---|---|")
    for name, t in table.items():
        print(f"| {name} | {t['chunks']} | {t['fps']} | {t['wall_s']} | {t['command_s']} | "
              f"{t['worker_fps'] or ''} | {t.get('stitch_ms_per_frame', '')} |")
    print(f"\ncost of one chunk: {1000 * per_chunk:.0f} ms; seek: {seek}")
    write_result(args.json, {
        "benchmark": "ray_scaling", "date": time.strftime("%Y-%m-%d"), "machine": cpu_name(),
        "cpus": os.cpu_count(), "command": "python " + " ".join(sys.argv),
        "video": f"{args.height * 16 // 9}x{args.height}, {args.seconds:g} s at 30 fps, "
                 "keyframe every 30 frames", "backend": args.backend, "rows": rows,
        "medians": table, "chunk_cost_ms": round(1000 * per_chunk, 1), "seek": seek})


if __name__ == "__main__":
    main()
