"""One inference path for live, offline, benchmark and web use: frames in, masks out.

    seg = Segmenter("m2snet_polyp.pt", backend="auto")
    result = seg(frame)            # frame: H x W x 3 uint8 RGB, numpy or torch, CPU or CUDA
    result.probabilities           # H x W float32 in 0..1, at frame size
    result.masks                   # H x W bool (probability > threshold)
    seg.info                       # backend, device, precision, subtraction unit, model, size

Batches (N x H x W x 3, or a list of equal-size frames) give N-first results. Resizing,
normalization (the checkpoint's own, ``m2snet.preprocess``) and layout happen on the backend's
device. The threshold may be given per call, so one Segmenter can serve callers that want
different ones (the web app's concurrent jobs).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import m2snet
from m2snet.checkpoint import CheckpointError
from m2snet.preprocess import resize_normalize
from realtime.engine import backends, cache
from realtime.engine.calibration import CalibrationSet
from realtime.engine.frames import HostStager, to_batch, to_frame_size
from realtime.errors import BackendError, one_line

log = logging.getLogger("realtime.engine")

DEMO_WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "demo_model.pt"


@dataclass
class Segmentation:
    """Probabilities (float32; binary: [N x] H x W, multi-class: [N x] K x H x W) and masks
    (binary: bool [N x] H x W; multi-class: uint8 class index [N x] H x W)."""
    probabilities: torch.Tensor
    masks: torch.Tensor

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        return self.probabilities.cpu().numpy(), self.masks.cpu().numpy()


@dataclass(frozen=True)
class SegmenterInfo:
    """What runs: for logs, summaries, the HUD and the web page."""
    backend: str          # the registry name (after auto's choice and any fallback)
    device: str           # cpu, cuda
    precision: str        # fp32, fp16, bf16
    impl: str             # subtraction unit: dense, factored, kernel
    model: str            # e.g. M2SNet(res2net50d, 1 class(es), width 64)
    input_size: int
    num_classes: int
    weights: str
    runner: str           # the backend's own description, e.g. "openvino (cpu) fp32"

    @property
    def label(self) -> str:
        """Short form for status lines: the runner without a redundant "(cpu)"."""
        return self.runner.replace(" (cpu)", "")

    def as_dict(self) -> dict:
        return asdict(self)


class Segmenter:
    def __init__(self, weights: str | Path | None = None, backend: str = "auto",
                 precision: str | None = None, size: int | None = None,
                 threshold: float = 0.5, impl: str | None = None,
                 cache_dir: str | Path | None = None, calibration: str | None = None,
                 calibration_frames: int | None = None):
        """``calibration`` (int8 only): a video or image folder whose frames calibrate the
        quantization (default: a phantom procedure, ``realtime.engine.calibration``)."""
        path = Path(weights) if weights is not None else DEMO_WEIGHTS
        if weights is None and not path.is_file():
            raise CheckpointError(f"no weights given and the bundled demo model is not built yet "
                                  f"({path}): pass weights=PATH (the authors' M2SNet.pth works)")
        self.threshold = _checked_threshold(threshold)
        if size is not None:
            checked_size(size)  # before the model loads: a typo fails at once
        entry = backends.resolve(backend)
        precision = precision or entry.precision_default()
        entry.check_precision(precision)
        entry.check_impl(impl or entry.default_impl)
        model, ckpt = m2snet.load_model(path, impl=impl or entry.default_impl)
        size = checked_size(size or ckpt.input_size)
        self.size, self.normalization = size, ckpt.normalization
        self.num_classes, self.weights = ckpt.config.num_classes, path
        calibrate = CalibrationSet(calibration, calibration_frames, size, ckpt.normalization)
        entry, self.runner = _build(entry, model, precision, (1, 3, size, size), path,
                                    cache_dir, fallback_allowed=backend == "auto",
                                    impl_given=impl is not None, calibration=calibrate)
        self.device = entry.torch_device()
        self.stager = HostStager() if self.device.type == "cuda" else None
        self.info = SegmenterInfo(entry.name, self.device.type, precision, model.impl,
                                  m2snet.checkpoint.describe(model), size, self.num_classes,
                                  str(path), self.runner.description)
        log.info("segmenter: %s, %s, input %dx%d, weights %s", self.runner.description,
                 self.info.model, size, size, path.name)

    @property
    def backend(self) -> str:
        return self.info.backend

    @property
    def precision(self) -> str:
        return self.info.precision

    @torch.inference_mode()
    def __call__(self, frames, threshold: float | None = None) -> Segmentation:
        threshold = self.threshold if threshold is None else _checked_threshold(threshold)
        batch, single = to_batch(frames, self.device, self.stager)
        height, width = batch.shape[1], batch.shape[2]
        x = resize_normalize(batch, self.size, self.normalization, self.runner.input_dtype)
        probabilities = to_frame_size(self.runner.forward(x), height, width)
        if self.num_classes == 1:
            masks = probabilities > threshold
        else:
            masks = probabilities.argmax(dim=1).to(torch.uint8)
        if single:
            probabilities, masks = probabilities[0], masks[0]
        return Segmentation(probabilities, masks)

    def warmup(self, iterations: int = 2, batch: int = 1) -> float:
        """Run blank frames through once or twice (compiles happen here, not on the first
        live frame); returns the seconds it took."""
        log.info("warming up (the first run on a machine also compiles kernels)...")
        start = time.perf_counter()
        frames = torch.zeros(batch, self.size, self.size, 3, dtype=torch.uint8, device=self.device)
        for _ in range(iterations):
            self(frames)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        took = time.perf_counter() - start
        log.info("warm-up took %.1f s", took)
        return took


def checked_size(size: int) -> int:
    if int(size) != size or size <= 0 or size % 32:
        raise ValueError(f"size must be a positive multiple of 32, got {size}")
    return int(size)


def _checked_threshold(threshold: float) -> float:
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    return float(threshold)


def _build(entry: backends.Backend, model: torch.nn.Module, precision: str, shape: tuple,
           weights: Path, cache_dir, fallback_allowed: bool, impl_given: bool,
           calibration: CalibrationSet | None = None):
    """(the entry that runs, its Runner). When auto's choice cannot prepare this network,
    its fallback is built instead (one warning); a backend named explicitly fails in one line
    with the library's gist."""
    artifact = None
    # an int8 network depends on its calibration set too
    variant = entry.artifact_precision(precision)
    if precision == "int8" and calibration:
        from realtime.engine.quantize import RECIPE
        variant = f"{precision}-{RECIPE}-{calibration.key}"
    if entry.artifact_suffix is not None:
        artifact = cache.engine_file(entry.name, weights, entry.artifact_identity(shape),
                                     variant, entry.artifact_suffix,
                                     Path(cache_dir) if cache_dir else None)
    request = backends.BuildRequest(model, precision, shape, artifact, calibration,
                                    calibration.name if calibration else "phantom")
    try:
        return entry, entry.build(request)
    except BackendError:
        raise
    except Exception as error:  # the library's own message, often many lines long
        fallback_runs = entry.fallback and precision in backends.get(entry.fallback).precisions
        if not fallback_allowed or not fallback_runs:
            hint = f"; backend={entry.fallback!r} runs any network" if entry.fallback else ""
            raise BackendError(f"backend {entry.name!r} could not prepare {weights.name}: "
                               f"{one_line(error, limit=400)}{hint}") from error
        fallback = backends.get(entry.fallback)
        log.warning("backend %s could not prepare %s (%s): using %s instead", entry.name,
                    weights.name, one_line(error, limit=400), fallback.name)
        if not impl_given:
            model.impl = fallback.default_impl
        return fallback, fallback.build(backends.BuildRequest(model, precision, shape))
