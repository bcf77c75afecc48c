"""The backend registry: every entry is consistent, and a backend is added by registering one
entry, with no edit elsewhere (names, help, availability, auto, Segmenter, the web app)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from helpers import run_cli
from realtime.engine import Segmenter, backends
from realtime.engine.backends import Backend, Runner
from realtime.errors import BackendError


def test_every_entry_is_consistent():
    for name in backends.names()[1:]:
        entry = backends.get(name)
        assert entry.name == name and entry.summary
        assert entry.device in ("cpu", "cuda", "any")
        assert set(entry.precisions) <= set(backends.PRECISIONS)
        if entry.default_precision:
            assert entry.default_precision in entry.precisions
        assert entry.fallback is None or entry.fallback in backends.names()
        assert (entry.artifact_suffix is None) == (entry.artifact_identity is None)
        reason = entry.missing()
        assert reason is None or ("use" in reason or "needs" in reason), reason


def test_auto_picks_the_highest_ranked_backend_that_runs():
    ranked = sorted((backends.get(n) for n in backends.names()[1:]
                     if backends.get(n).auto_rank is not None), key=lambda b: -b.auto_rank)
    expected = next(b.name for b in ranked if b.missing() is None)
    assert backends.resolve("auto").name == expected
    if not torch.cuda.is_available():
        assert expected in ("openvino", "cpu")


def test_auto_on_a_gpu_without_tensorrt_picks_eager_cuda_and_names_compile(monkeypatch, caplog):
    """This machine has no GPU: torch is told it has one (only resolve's choice and its log
    are checked; nothing runs on it). tests/test_gpu_backends.py runs both on a real GPU."""
    if backends.get("tensorrt").missing() is None:
        pytest.skip("torch-tensorrt is installed: auto picks it")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "a pretend GPU")
    with caplog.at_level(logging.INFO, logger="realtime.engine"):
        assert backends.resolve("auto").name == "cuda"
    assert "backend auto -> cuda (a pretend GPU)" in caplog.text
    assert "--backend compile (CUDA graphs)" in caplog.text


@pytest.fixture
def doubled_backend(monkeypatch):
    """A backend registered the way a new backend file does it: the plain CPU network with
    its logits doubled (so that its results can be told apart). Removed afterwards."""
    cpu = backends.get("cpu")

    def build(request):
        runner = cpu.build(request)
        return Runner(lambda x: 2 * runner.forward(x), runner.input_dtype, "doubled (cpu) fp32")

    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))
    backends.register(Backend("doubled", "test backend: logits x 2", device="cpu",
                              precisions=("fp32",), build=build, auto_rank=1000))
    return "doubled"


def test_a_registered_backend_is_usable_everywhere(doubled_backend, tiny_weights):
    assert "doubled" in backends.names() and "doubled" in backends.available()
    assert backends.resolve("auto").name == "doubled"  # ranked first
    seg = Segmenter(tiny_weights, backend="doubled")
    assert seg.info.backend == "doubled" and seg.info.runner == "doubled (cpu) fp32"
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    plain = Segmenter(tiny_weights, backend="cpu", impl="kernel")(frame).probabilities
    doubled = seg(frame).probabilities.double()
    torch.testing.assert_close(doubled, torch.sigmoid(2 * torch.logit(plain.double())),
                               atol=2e-3, rtol=0)  # float32 probabilities near 0 or 1
    assert (doubled - plain).abs().max() > 0.01
    from realtime.app import AppConfig, AppState
    assert "doubled" in AppState(AppConfig()).backends()


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        backends.register(backends.get("cpu"))


def test_refusals_name_the_backend_and_what_to_do(tiny_weights):
    with pytest.raises(BackendError, match="unknown backend 'npu'; choose one of auto, cpu"):
        Segmenter(tiny_weights, backend="npu")
    with pytest.raises(BackendError, match="the onnxruntime backend runs fp32; ONNX Runtime "
                                           "here runs fp32"):
        backends.get("onnxruntime").check_precision("bf16")


def test_help_lists_every_registered_backend():
    done = run_cli("realtime", "annotate", "--help")
    text = " ".join(done.stdout.split())
    described = text.rsplit("--backend BACKEND", 1)[1].split("--precision")[0]
    assert described.split(",")[0].split()[0] == "auto"
    for name in backends.names():
        assert name in described, described


def test_segmenter_info_describes_what_runs(tiny_weights):
    seg = Segmenter(tiny_weights, backend="cpu", precision="bf16")
    info = seg.info
    assert (info.backend, info.device, info.precision, info.impl, info.input_size) == \
        ("cpu", "cpu", "bf16", "kernel", 64)
    assert info.model == "M2SNet(resnet18, 1 class(es), width 8)"
    assert info.as_dict()["weights"] == str(tiny_weights)
    assert info.label == "cpu bf16"
