"""The GPU backends against the float32 CPU engine: cuda fp16/fp32, the Triton subtraction
kernel inside the model, frames already on the GPU, torch.compile with CUDA graphs and, where
importable, TensorRT. Skipped without a CUDA GPU; benchmarks/gpu_check.sh runs them on a
lent one (no GPU was lent while they were written: see the README's status table).

Tolerances: "fp32" on a GPU lets cuDNN use TF32 (10-bit mantissas) in convolutions, so it is
held to the same bounds as bf16 autocast on the CPU; fp16 keeps 11 bits and the subtraction
unit's sums in float32. Masks must agree (Dice >= 0.99) on frames whose masks are not empty.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
import torch

import m2snet
from helpers import dice
from m2snet.calibration import calibrate
from m2snet.phantom import phantom_still
from realtime.engine.backends.tensorrt import tensorrt_module
from realtime.engine.segmenter import Segmenter

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs these)")]



SIZES = ((480, 640), (720, 1280), (333, 517), (1080, 1920))


@functools.lru_cache(maxsize=4)
def _phantom_frames(sizes=SIZES) -> list[np.ndarray]:
    """Unseen synthetic colonoscopy frames at camera-like sizes, each showing a polyp at least
    half in view and of at least 2000 pixels at 352x352 (the demo model finds those)."""
    frames, seed = [], 7000
    while len(frames) < len(sizes):
        image, mask, visible = phantom_still(seed, 352)
        seed += 1
        if max(visible, default=0.0) >= 0.5 and mask.sum() >= 2000:
            h, w = sizes[len(frames)]
            frames.append(cv2.resize(image, (w, h), interpolation=cv2.INTER_CUBIC))
    return frames


@pytest.fixture(scope="module")
def cpu_demo():
    return Segmenter(backend="cpu")


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    torch.manual_seed(0)
    model = m2snet.create_model(arch="m2snet", backbone="resnet18", width=8)
    calibrate(model, torch.rand(2, 3, 96, 96) * 4 - 2)
    return m2snet.save_checkpoint(model, tmp_path_factory.mktemp("w") / "small.pt",
                                  input_size=96)


BOUNDS = {"fp16": (2e-3, 0.1), "fp32": (1e-2, 0.1)}  # (mean, max) |probability difference|


def _assert_close(result, expected, precision):
    mean_bound, max_bound = BOUNDS[precision]
    difference = (result.probabilities.cpu() - expected.probabilities).abs()
    assert difference.mean() < mean_bound and difference.max() < max_bound, (
        f"{precision}: mean {difference.mean():.2e}, max {difference.max():.2e}")


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_cuda_backend_matches_float32_cpu_on_phantom_frames(cpu_demo, precision):
    cuda = Segmenter(backend="cuda", precision=precision)
    for frame in _phantom_frames():
        result, expected = cuda(frame), cpu_demo(frame)
        assert result.probabilities.device.type == "cuda"
        assert result.probabilities.shape == frame.shape[:2]
        _assert_close(result, expected, precision)
        assert expected.masks.any() and dice(result.masks.cpu(), expected.masks) >= 0.99


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_cuda_backend_matches_float32_cpu_on_random_inputs(random_weights, precision):
    cuda = Segmenter(random_weights, backend="cuda", precision=precision)
    cpu = Segmenter(random_weights, backend="cpu")
    rng = np.random.default_rng(0)
    for h, w in [(96, 96), (37, 53), (481, 641)]:
        frame = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        _assert_close(cuda(frame), cpu(frame), precision)


def test_triton_kernel_in_the_model_equals_the_factored_unit(cpu_demo):
    factored = Segmenter(backend="cuda", impl="factored")
    kernel = Segmenter(backend="cuda", impl="kernel")
    for frame in _phantom_frames()[:2]:
        a, b = factored(frame), kernel(frame)
        difference = (a.probabilities - b.probabilities).abs()
        assert difference.max() < 2e-2 and difference.mean() < 1e-3
        assert dice(a.masks, b.masks) >= 0.99


def test_frames_already_on_the_gpu_and_uploads_agree():
    cuda = Segmenter(backend="cuda")
    a, b = _phantom_frames(((480, 640), (480, 640)))
    frames = np.stack([a, b, a])
    from_host = cuda(frames)  # through the pinned staging buffer
    on_device = cuda(torch.from_numpy(frames).cuda())
    assert from_host.probabilities.shape == (3, 480, 640)
    torch.testing.assert_close(on_device.probabilities, from_host.probabilities, rtol=0,
                               atol=1e-3)
    # One staging buffer serves every upload: b's copy must wait until a's has left it
    # (compared at batch 1 throughout: cuDNN may pick other algorithms for other batches).
    alone_a, alone_b = cuda(a).probabilities.clone(), cuda(b).probabilities.clone()
    assert (alone_a - alone_b).abs().max() > 0.1  # the frames tell apart
    first, second = cuda(a), cuda(b)
    torch.cuda.synchronize()
    torch.testing.assert_close(first.probabilities, alone_a, rtol=0, atol=1e-3)
    torch.testing.assert_close(second.probabilities, alone_b, rtol=0, atol=1e-3)


def test_compile_with_cuda_graphs_matches_eager_cuda(cpu_demo):
    frame = _phantom_frames()[0]
    compiled = Segmenter(backend="compile")
    compiled.warmup(iterations=3)  # CUDA graphs record on a later call than the first
    result = compiled(frame)
    _assert_close(result, cpu_demo(frame), "fp16")
    assert dice(result.masks.cpu(), cpu_demo(frame).masks) >= 0.99


@pytest.mark.skipif(tensorrt_module() is None, reason="torch-tensorrt is not installed")
def test_tensorrt_engine_matches_float32_and_is_reused(cpu_demo, tmp_path):
    frame = _phantom_frames()[0]
    built = Segmenter(backend="tensorrt", cache_dir=tmp_path)(frame)
    _assert_close(built, cpu_demo(frame), "fp16")
    assert any(tmp_path.glob("*.ep"))
    reused = Segmenter(backend="tensorrt", cache_dir=tmp_path)(frame)
    torch.testing.assert_close(reused.probabilities, built.probabilities, rtol=0, atol=1e-3)
