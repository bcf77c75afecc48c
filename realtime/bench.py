"""``python -m realtime bench``: frames per second over a grid of backends, precisions, batch
sizes, input sizes and subtraction-unit implementations, plus end-to-end runs; comparable JSON,
a Markdown table, a plot, and ratios against an earlier run.

Every model row is warmed up, timed with the device synchronized (CUDA events on a GPU), and
checked against the authors' formulation (dense subtraction units, fp32) on the same frame:
the largest probability difference and the Dice of the masks. ``speedup`` is the row's fps
over the ``reference`` row of the same model, backend, precision, batch and size, measured in
the same run.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import platform
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from realtime.backends import device_of, one_line, resolve

log = logging.getLogger("realtime.bench")

SCHEMA = "m2snet-rt-bench/1"
IMPLS = {"reference": "dense", "factored": "factored", "kernel": "kernel"}
KEY = ("model", "backend", "precision", "batch", "size", "impl")


@dataclass(frozen=True)
class Case:
    model: str
    backend: str
    precision: str
    batch: int
    size: int
    impl: str



def model_weights(name: str, folder: Path) -> Path | None:
    """The bundled demo model (None), a random-weight M2SNet/MSNet on Res2Net-50 (speed does
    not depend on the values), or a checkpoint file."""
    if name == "demo":
        return None
    if name in ("m2snet", "msnet"):
        import m2snet
        torch.manual_seed(0)
        model = calibrate(m2snet.create_model(name), sample_frames(4, 352))
        return m2snet.save_checkpoint(model, folder / f"{name}.pt", input_size=352)
    if not Path(name).is_file():
        raise FileNotFoundError(f"{name}: not a model name (demo, m2snet, msnet) or a file")
    return Path(name)


def calibrate(model: torch.nn.Module, frames: np.ndarray) -> torch.nn.Module:
    """BatchNorm-calibrated random weights (``m2snet.calibration``) on ImageNet-normalized
    ``frames``, so the outputs to compare are not all saturated at 0 or 1."""
    from m2snet.calibration import calibrate as calibrate_batchnorm
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / \
        torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return calibrate_batchnorm(model, x)


def sample_frames(batch: int, size: int) -> np.ndarray:
    from m2snet.phantom import phantom_image
    return np.stack([phantom_image(1000 + i, size)[0] for i in range(batch)])


def _timed_call(segmenter, frames, cuda: bool) -> tuple[float, object]:
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        result = segmenter(frames)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3, result
    t = time.perf_counter()
    result = segmenter(frames)
    return time.perf_counter() - t, result


def _build(case: Case, weights: Path | None):
    from realtime.segmenter import Segmenter
    segmenter = Segmenter(weights, backend=case.backend, precision=case.precision,
                          size=case.size, impl=IMPLS[case.impl])
    frames = sample_frames(case.batch, case.size)
    if segmenter.device.type == "cuda":
        frames = torch.from_numpy(frames).to(segmenter.device)  # model speed, not the upload
    return segmenter, frames


def measure_group(cases: list[Case], weights: Path | None, truth: np.ndarray, warmup: int,
                  repeats: int) -> list[dict]:
    """Cases that differ only in the subtraction unit, timed in interleaved rounds (one call
    of each per round) so that the machine's drift affects them alike."""
    built = [_build(case, weights) for case in cases]
    cuda = built[0][0].device.type == "cuda"
    peaks = []
    for segmenter, frames in built:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        for _ in range(warmup):
            segmenter(frames)
        peaks.append(torch.cuda.max_memory_allocated() / 2**20 if cuda else None)
    times: list[list[float]] = [[] for _ in built]
    results = [None] * len(built)
    for _ in range(repeats):
        for i, (segmenter, frames) in enumerate(built):
            seconds, results[i] = _timed_call(segmenter, frames, cuda)
            times[i].append(seconds)
    rows = []
    for case, (segmenter, _), spent, result, peak in zip(cases, built, times, results, peaks):
        probabilities = result.probabilities.float().cpu().numpy()[0]
        mask, expected = probabilities > segmenter.threshold, truth > segmenter.threshold
        total = mask.sum() + expected.sum()
        median = statistics.median(spent)
        rows.append({
            **asdict(case), "device": torch.cuda.get_device_name() if cuda else "cpu",
            "fps": case.batch / median,
            "latency_ms": {"p50": median * 1e3, "p99": float(np.percentile(spent, 99)) * 1e3},
            "peak_memory_mb": peak,
            "max_prob_diff": float(np.abs(probabilities - truth).max()),
            "mask_dice": 1.0 if total == 0 else float(2 * (mask & expected).sum() / total),
            "foreground": float(expected.mean()),
            "repeats": repeats,
        })
    return rows


def reference_output(weights: Path | None, size: int, device: str) -> np.ndarray:
    """The authors' formulation in fp32 on the first test frame: what every row must match."""
    from realtime.segmenter import Segmenter
    backend = "cuda" if device == "cuda" else "cpu"
    segmenter = Segmenter(weights, backend=backend, precision="fp32", size=size, impl="dense")
    return segmenter(sample_frames(1, size)).probabilities.float().cpu().numpy()[0]


def run_grid(cases: list[Case], weights: dict, warmup: int, repeats: int, progress=True) -> list[dict]:
    from tqdm import tqdm
    groups: dict = {}
    for case in cases:  # backends of one device are timed in the same interleaved rounds
        groups.setdefault((case.model, device_of(case.backend).type, case.precision, case.batch,
                           case.size), []).append(case)
    truths: dict = {}
    rows = []
    for (model, device, *_), group in tqdm(groups.items(), desc="model grid", unit="group",
                                           disable=not progress):
        key = (model, group[0].size, device)
        try:
            if key not in truths:
                truths[key] = reference_output(weights[model], group[0].size, device)
            rows += measure_group(group, weights[model], truths[key], warmup, repeats)
        except Exception as error:  # noqa: BLE001  (one group failing must not lose the rest)
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            log.warning("%s: %s", group[0], message)
            rows += [{**asdict(case), "error": message} for case in group]
    for row in rows:
        # the backend's own reference row, else one on the same device (openvino runs no
        # reference of its own)
        same = [r for r in rows if r.get("fps") and r["impl"] == "reference"
                and r["device"] == row.get("device")
                and all(r[k] == row[k] for k in KEY if k not in ("impl", "backend"))]
        ref = next((r for r in same if r["backend"] == row["backend"]), same[0] if same else None)
        row["speedup"] = row["fps"] / ref["fps"] if ref and row.get("fps") else None
    return rows


def procedure_video(path: Path, fps: int, seconds: float, width: int, height: int) -> Path:
    """A synthetic procedure: the colon in a square field of view centred on a black frame,
    as endoscopy monitors show it, H.264."""
    import cv2  # noqa: F401
    import av

    from m2snet.phantom import PhantomScene
    scene = PhantomScene(2, height, max_polyps=4, polyp_probability=1.0)
    x0 = (width - height) // 2
    canvas = np.zeros((height, width, 3), np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "veryfast", "crf": "20"}
        for i in range(int(seconds * fps)):
            canvas[:, x0:x0 + height] = scene.frame(i / fps)[0]
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def end_to_end(weights: Path | None, backend: str, height: int, seconds: float, folder: Path,
               batch: int = 1) -> list[dict]:
    """Offline (decode -> infer -> overlay -> H.264 + FFV1) and live (paced source -> null
    sink) on the same generated video."""
    from realtime.annotate import AnnotateOptions, InputSpec, annotate_one
    from realtime.live import LiveOptions, LivePipeline
    from realtime.segmenter import Segmenter
    from realtime.sinks import NullSink
    from realtime.sources import open_source

    width = height * 16 // 9
    video = procedure_video(folder / f"procedure_{height}p.mp4", 30, seconds, width, height)
    segmenter = Segmenter(weights, backend=backend)
    segmenter.warmup(iterations=2, batch=batch)
    summary = annotate_one(InputSpec(str(video), "e2e", "video"), segmenter, folder / "out",
                           AnnotateOptions(batch=batch, progress=False))
    t = summary["timings"]
    rows = [{"pipeline": "annotate", "size": f"{width}x{height}", "backend":
             segmenter.runner.description, "batch": batch, "frames": summary["frames"],
             "fps": t["fps"], "busy_s": {k: t[k] for k in ("decode_s", "infer_s", "write_s")},
             "wall_s": t["wall_s"]}]
    live = LivePipeline(open_source(str(video)), segmenter, [NullSink()], LiveOptions()).run()
    rows.append({"pipeline": "live", "size": f"{width}x{height}", "source_fps": 30,
                 "backend": segmenter.runner.description, "fps": live["fps"],
                 "latency_ms": live["latency_ms"], "mask_age_ms": live["mask_age_ms"],
                 "stage_ms_median": live["stage_ms_median"],
                 "frames_dropped": live["frames_dropped"],
                 "frames_not_displayed": live["frames_not_displayed"]})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| model | backend | precision | batch | size | impl | fps | p50 ms | p99 ms | "
             "speed-up | max Δp | mask Dice | peak MB |", "|" + "---|" * 13]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['backend']} | {r['precision']} | {r['batch']} | "
                         f"{r['size']} | {r['impl']} | failed: {r['error']} |||||||")
            continue
        peak = f"{r['peak_memory_mb']:.0f}" if r["peak_memory_mb"] is not None else "-"
        speedup = f"{r['speedup']:.2f}×" if r.get("speedup") else "-"
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['precision']} | {r['batch']} | {r['size']} | "
            f"{r['impl']} | {r['fps']:.1f} | {r['latency_ms']['p50']:.1f} | "
            f"{r['latency_ms']['p99']:.1f} | {speedup} | {r['max_prob_diff']:.1e} | "
            f"{r['mask_dice']:.3f} | {peak} |")
    return "\n".join(lines)


def markdown_e2e(rows: list[dict]) -> str:
    lines = ["| pipeline | size | backend | fps | details |", "|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['pipeline']} | | | failed | {r['error']} |")
            continue
        if r["pipeline"] == "annotate":
            b = r["busy_s"]
            detail = (f"busy s: decode {b['decode_s']:.1f}, infer {b['infer_s']:.1f}, write "
                      f"{b['write_s']:.1f} (wall {r['wall_s']:.1f})")
            fps = f"{r['fps']:.1f}"
        else:
            lat = r["latency_ms"]
            detail = (f"shown of a {r['source_fps']} fps source; latency p50 {lat['p50']:.1f} / "
                      f"p99 {lat['p99']:.1f} ms, mask age p50 {r['mask_age_ms']['p50']:.0f} ms")
            fps = f"{r['fps']['displayed']:.1f} shown, {r['fps']['processed']:.1f} segmented"
        lines.append(f"| {r['pipeline']} | {r['size']} | {r['backend']} | {fps} | {detail} |")
    return "\n".join(lines)


def compare(new: dict, old: dict) -> str:
    lines = [f"compared with {old['env'].get('cpu')} / {old['env'].get('gpu') or 'no GPU'} "
             f"({old.get('date')})", "| model | backend | precision | batch | size | impl | "
             "old fps | new fps | ratio |", "|" + "---|" * 9]
    index = {tuple(r[k] for k in KEY): r for r in old["results"] if r.get("fps")}
    for r in new["results"]:
        before = index.get(tuple(r[k] for k in KEY))
        if before is None or not r.get("fps"):
            continue
        lines.append(f"| {' | '.join(str(r[k]) for k in KEY)} | {before['fps']:.1f} | "
                     f"{r['fps']:.1f} | {r['fps'] / before['fps']:.2f}× |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in result["results"] if r.get("fps")]
    labels = [f"{r['model']} {r['size']}\n{r['backend']} {r['precision']} b{r['batch']}"
              for r in rows]
    groups = list(dict.fromkeys(labels))
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    width = 0.8 / max(1, len(impls))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(groups) + 2), 4.2), dpi=110)
    for j, impl in enumerate(impls):
        xs, ys = [], []
        for r, label in zip(rows, labels):
            if r["impl"] == impl:
                xs.append(groups.index(label) + (j - (len(impls) - 1) / 2) * width)
                ys.append(r["fps"])
        bars = ax.bar(xs, ys, width, label=impl)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel("frames per second (batch / median latency)")
    env = result["env"]
    ax.set_title(f"M2SNet frames/s — {env.get('gpu') or env.get('cpu')}, "
                 f"{env.get('threads')} threads, torch {env.get('torch')} — {result['date']}",
                 fontsize=9)
    ax.legend(title="subtraction unit", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def build_cases(args) -> list[Case]:
    """Every combination, less those that cannot run: OpenVINO converts standard operators
    only, so it runs the factored unit (its speed-up is taken over the cpu reference)."""
    return [Case(*values) for values in itertools.product(
        args.models, args.backends, args.precisions, args.batches, args.sizes, args.impls)
        if values[4] % 32 == 0 and (values[1] != "openvino" or values[5] == "factored")]


def end_to_end_backend(listed: list[str]) -> str:
    """The backend users get by default (auto's choice) when it is among those benched, so
    that end-to-end numbers are the ones a plain ``live`` or ``annotate`` run sees."""
    chosen = resolve("auto")
    return chosen if chosen in listed else listed[0]


def run(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        weights = {name: model_weights(name, Path(tmp)) for name in args.models}
        cases = build_cases(args)
        rows = run_grid(cases, weights, args.warmup, args.repeats, progress=not args.quiet)
        e2e = []
        if args.e2e_height:
            backend = end_to_end_backend(args.backends)
            try:
                e2e = end_to_end(weights[args.models[0]], backend, args.e2e_height,
                                 args.e2e_seconds, Path(tmp))
            except Exception as error:  # noqa: BLE001  (the grid's results are kept)
                log.warning("end to end with %s failed: %s", backend, one_line(error))
                e2e = [{"pipeline": "end_to_end", "backend": backend,
                        "error": one_line(error)}]
    return {"schema": SCHEMA, "date": time.strftime("%Y-%m-%d"), "command":
            "python -m realtime " + " ".join(sys.argv[1:]) if sys.argv else "",
            "env": describe_environment(), "results": rows, "end_to_end": e2e}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_environment() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def v(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    driver = None
    if gpu:
        import subprocess
        try:
            driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version",
                                     "--format=csv,noheader"], capture_output=True, text=True,
                                    timeout=20).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            driver = None
    return {"cpu": cpu_name(), "gpu": gpu, "driver": driver, "cuda": torch.version.cuda if gpu else None,
            "torch": torch.__version__, "torch_tensorrt": v("torch-tensorrt"), "timm": v("timm"),
            "numba": v("numba"), "av": v("av"), "opencv": v("opencv-python"),
            "python": platform.python_version(), "threads": torch.get_num_threads(),
            "hostname": socket.gethostname()}


QUICK = {"models": ["demo"], "batches": [1], "sizes": [256],
         "impls": ["reference", "factored", "kernel"], "repeats": 7, "warmup": 2,
         "e2e_height": 360, "e2e_seconds": 2.0}


def default_backends(gpu: bool) -> list[str]:
    """What a bench compares unless told otherwise: the GPU's eager path, or on a CPU the
    cpu backend beside OpenVINO when it is installed."""
    if gpu:
        return ["cuda"]
    return ["cpu", "openvino"] if importlib.util.find_spec("openvino") else ["cpu"]


def default_precisions(gpu: bool) -> list[str]:
    return ["fp16", "fp32"] if gpu else ["fp32"]


def main(args) -> int:
    for name in ("models", "backends", "precisions", "impls"):
        value = getattr(args, name)
        if isinstance(value, str):
            setattr(args, name, [v for v in value.split(",") if v])
    for name in ("batches", "sizes"):
        value = getattr(args, name)
        if isinstance(value, str):
            setattr(args, name, [int(v) for v in value.split(",") if v])
    unknown = [i for i in args.impls if i not in IMPLS]
    if unknown:
        raise ValueError(f"unknown impl {unknown[0]!r}: choose from {', '.join(IMPLS)}")
    bad = [s for s in args.sizes if s <= 0 or s % 32]
    if bad:
        raise ValueError(f"sizes must be positive multiples of 32, got {bad[0]}")
    if args.e2e_height and args.e2e_height < 64:
        raise ValueError(f"--e2e-height must be 0 (no end-to-end run) or at least 64, got "
                         f"{args.e2e_height}")
    if args.compare and not Path(args.compare).is_file():
        raise FileNotFoundError(f"{args.compare}: no such file to compare with")
    result = run(args)
    print(markdown(result["results"]))
    if result["end_to_end"]:
        print()
        print(markdown_e2e(result["end_to_end"]))
    json_path = Path(args.json)
    from realtime.live_cli import write_json_atomically
    write_json_atomically(json_path, result)
    plot_path = Path(args.plot) if args.plot else json_path.with_suffix(".png")
    if any(r.get("fps") for r in result["results"]):
        plot(result, plot_path)
        print(f"\nresults: {json_path}; plot: {plot_path}")
    else:
        print(f"\nresults: {json_path}")
    if args.compare:
        print()
        print(compare(result, json.loads(Path(args.compare).read_text())))
    failed = [r for r in result["results"] if "error" in r]
    if failed and len(failed) == len(result["results"]):
        print(f"error: every case failed, e.g. {failed[0]['error']}", file=sys.stderr)
        return 1
    return 0
