"""The model grid: every combination of model, backend, precision, batch, size and
subtraction unit, warmed up, timed with the device synchronized (CUDA events on a GPU), the
units of one configuration in interleaved rounds, and checked against the authors'
formulation (dense subtraction units, fp32) on the same frame."""

from __future__ import annotations

import itertools
import logging
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from realtime.engine import backends
from realtime.errors import one_line

log = logging.getLogger("realtime.bench")

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
    from m2snet.checkpoint import IMAGENET
    from m2snet.preprocess import normalize
    x = normalize(torch.from_numpy(frames).permute(0, 3, 1, 2), IMAGENET)
    return calibrate_batchnorm(model, x)


def sample_frames(batch: int, size: int) -> np.ndarray:
    """Phantom frames that show a polyp at least half in view (scenes from seed 1000 on): an
    output check on a polyp-free frame would compare two empty masks and prove nothing."""
    from m2snet.phantom import polyp_stills
    return polyp_stills(batch, size, first_seed=1000)[0]


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
    from realtime.engine import Segmenter
    segmenter = Segmenter(weights, backend=case.backend, precision=case.precision,
                          size=case.size, impl=IMPLS[case.impl])
    frames = sample_frames(case.batch, case.size)
    if segmenter.device.type == "cuda":
        frames = torch.from_numpy(frames).to(segmenter.device)  # model speed, not the upload
    return segmenter, frames


def measure_group(cases: list[Case], weights: Path | None, truth: np.ndarray, warmup: int,
                  repeats: int) -> list[dict]:
    """Cases of one model, device, batch and size (backends, precisions, subtraction units),
    timed in interleaved rounds (one call of each per round) so that the machine's drift
    affects them alike. A case that cannot be built gets an error row; the others run."""
    failed, kept, built = [], [], []
    for case in cases:
        try:
            built.append(_build(case, weights))
            kept.append(case)
        except Exception as error:  # noqa: BLE001  (say why in its row, time the rest)
            log.warning("%s: %s", case, one_line(error))
            failed.append({**asdict(case), "error": one_line(error)})
    if not built:
        return failed
    cases = kept
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
        p99 = float(np.percentile(spent, 99))
        if p99 > 2 * median:
            log.warning("%s %s %s batch %d size %d %s: noisy timings (p99 %.1f ms, median %.1f "
                        "ms): something else used the machine; compare medians only",
                        case.model, case.backend, case.precision, case.batch, case.size,
                        case.impl, p99 * 1e3, median * 1e3)
        rows.append({
            **asdict(case), "device": torch.cuda.get_device_name() if cuda else "cpu",
            "fps": case.batch / median,
            "latency_ms": {"p50": median * 1e3, "p99": p99 * 1e3},
            "peak_memory_mb": peak,
            "max_prob_diff": float(np.abs(probabilities - truth).max()),
            "mask_dice": 1.0 if total == 0 else float(2 * (mask & expected).sum() / total),
            "foreground": float(expected.mean()),
            "repeats": repeats,
        })
    return rows + failed


def reference_output(weights: Path | None, size: int, device: str) -> np.ndarray:
    """The authors' formulation in fp32 on the first test frame: what every row must match."""
    from realtime.engine import Segmenter
    backend = "cuda" if device == "cuda" else "cpu"
    segmenter = Segmenter(weights, backend=backend, precision="fp32", size=size, impl="dense")
    return segmenter(sample_frames(1, size)).probabilities.float().cpu().numpy()[0]


def run_grid(cases: list[Case], weights: dict, warmup: int, repeats: int, progress=True) -> list[dict]:
    from tqdm import tqdm
    groups: dict = {}
    for case in cases:  # backends and precisions of one device: the same interleaved rounds
        device = backends.get(case.backend).torch_device().type
        groups.setdefault((case.model, device, case.batch, case.size), []).append(case)
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
            message = one_line(error)
            log.warning("%s: %s", group[0], message)
            rows += [{**asdict(case), "error": message} for case in group]
    for row in rows:
        row["speedup"] = None
        if row.get("fps") and (ref := _reference_row(row, rows)):
            row["speedup"], row["speedup_over"] = row["fps"] / ref["fps"], \
                f"{ref['backend']} reference {ref['precision']}"
    return rows


def _reference_row(row: dict, rows: list[dict]) -> dict | None:
    """What a row's speed-up is over: the authors' formulation on the same device, model, batch
    and size, in the row's own backend and precision; where that backend runs no reference
    (openvino, onnxruntime) or not in that precision (int8), the fp32 one, as the authors
    run it."""
    same = [r for r in rows if r.get("fps") and r["impl"] == "reference"
            and r["device"] == row.get("device")
            and all(r[k] == row[k] for k in ("model", "batch", "size"))]
    own = [r for r in same if r["backend"] == row["backend"] and r["precision"] == row["precision"]]
    return next(iter(own or [r for r in same if r["precision"] == "fp32"]), None)



def build_cases(args) -> list[Case]:
    """Every combination, less those that cannot run: a backend times the subtraction units
    it runs (OpenVINO: the factored one; its speed-up is then taken over the reference row
    of another backend on its device)."""
    return [Case(*values) for values in itertools.product(
        args.models, args.backends, args.precisions, args.batches, args.sizes, args.impls)
        if values[4] % 32 == 0 and IMPLS[values[5]] in backends.get(values[1]).impls
        and _runs(values[1], values[2])]


def _runs(backend: str, precision: str) -> bool:
    try:
        backends.get(backend).check_precision(precision)
    except Exception:  # noqa: BLE001  (a precision this backend refuses is left out)
        return False
    return True
