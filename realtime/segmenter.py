"""One inference path for live, offline, benchmark and web use: frames in, masks out.

    seg = Segmenter("m2snet_polyp.pt", backend="auto")
    result = seg(frame)            # frame: H x W x 3 uint8 RGB, numpy or torch, CPU or CUDA
    result.probabilities           # H x W float32 in 0..1, at frame size
    result.masks                   # H x W bool (probability > threshold)

Batches (N x H x W x 3, or a list of equal-size frames) give N-first results. Resizing,
normalization (the checkpoint's own) and layout happen on the backend's device.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import m2snet
from m2snet.checkpoint import CheckpointError
from realtime import backends, engine_cache
from realtime.frames import HostStager, network_input, to_batch, to_frame_size

log = logging.getLogger("realtime.engine")

DEMO_WEIGHTS = Path(__file__).resolve().parent / "assets" / "demo_model.pt"


@dataclass
class Segmentation:
    """Probabilities (float32; binary: [N x] H x W, multi-class: [N x] K x H x W) and masks
    (binary: bool [N x] H x W; multi-class: uint8 class index [N x] H x W)."""
    probabilities: torch.Tensor
    masks: torch.Tensor

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        return self.probabilities.cpu().numpy(), self.masks.cpu().numpy()


class Segmenter:
    def __init__(self, weights: str | Path | None = None, backend: str = "auto",
                 precision: str | None = None, size: int | None = None,
                 threshold: float = 0.5, impl: str | None = None,
                 cache_dir: str | Path | None = None):
        path = Path(weights) if weights is not None else DEMO_WEIGHTS
        if weights is None and not path.is_file():
            raise CheckpointError(f"no weights given and the bundled demo model is not built yet "
                                  f"({path}): pass weights=PATH (the authors' M2SNet.pth works)")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}")
        self.backend = backends.resolve(backend)
        self.device = backends.device_of(self.backend)
        self.precision = precision or backends.default_precision(self.backend)
        dtype = backends.check_precision(self.backend, self.precision)

        model, ckpt = m2snet.load_model(path, impl=impl or backends.default_impl(self.backend))
        self.size = int(size or ckpt.input_size)
        if self.size <= 0 or self.size % 32:
            raise ValueError(f"size must be a positive multiple of 32, got {self.size}")
        self.normalization = ckpt.normalization
        self.num_classes = ckpt.config.num_classes
        self.threshold = threshold
        self.weights = path

        shape = (1, 3, self.size, self.size)
        engine_file = None
        if self.backend in ("tensorrt", "openvino"):
            engine_file = engine_cache.engine_file(self.backend, path, shape, self.precision,
                                                   Path(cache_dir) if cache_dir else None)
        try:
            self.runner = backends.build(model, self.backend, dtype, shape, engine_file)
        except backends.BackendError:
            raise
        except Exception as error:  # the library's own message, often many lines long
            fallback = backends.FALLBACK.get(self.backend)
            if backend != "auto" or fallback is None:
                hint = f"; backend={fallback!r} runs any network" if fallback else ""
                raise backends.BackendError(
                    f"backend {self.backend!r} could not prepare {path.name}: "
                    f"{backends.one_line(error)}{hint}") from error
            log.warning("backend %s could not prepare %s (%s): using %s instead",
                        self.backend, path.name, backends.one_line(error), fallback)
            self.backend = fallback
            if impl is None:
                model.impl = backends.default_impl(fallback)
            self.runner = backends.build(model, fallback, dtype, shape)
        self.stager = HostStager() if self.device.type == "cuda" else None
        log.info("segmenter: %s, %s, input %dx%d, weights %s", self.runner.description,
                 m2snet.checkpoint.describe(model), self.size, self.size, path.name)

    @torch.inference_mode()
    def __call__(self, frames) -> Segmentation:
        batch, single = to_batch(frames, self.device, self.stager)
        height, width = batch.shape[1], batch.shape[2]
        x = network_input(batch, self.size, self.normalization, self.runner.input_dtype)
        probabilities = to_frame_size(self.runner.forward(x), height, width)
        if self.num_classes == 1:
            masks = probabilities > self.threshold
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
