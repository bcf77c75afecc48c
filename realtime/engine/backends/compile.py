"""``compile``: torch.compile of the folded network; on a GPU with CUDA graphs
("reduce-overhead"), on the CPU as plain Inductor code. Compiled code is cached under the
engine cache's ``inductor`` folder.

On a GPU it compiles while the Segmenter is built (a failure is then one line at start, not a
crash in the pipeline). It is the GPU backend to use at batch 1: eager PyTorch launches every
kernel from Python while the pipeline's other threads hold the interpreter's lock between their
calls (a 1080p frame on an H200: 12 ms alone, seconds beside a busy Python thread), and one CUDA
graph is one launch. On the CPU the first frame compiles (logged)."""

from __future__ import annotations

import logging
import threading
import time

import torch

from realtime.engine import cache
from realtime.engine.slow_step import slow_step
from realtime.engine.backends import Backend, BuildRequest, Runner, folded, register, short
from realtime.engine.backends.torch_eager import autocast_forward

log = logging.getLogger("realtime.engine")


def timed_first_call(fn, what: str, usually: str):
    """Log the first call (where compilation happens) and how long it took."""
    state = {"first": True}

    def call(x):
        if not state["first"]:
            return fn(x)
        start = time.perf_counter()
        with slow_step(f"{what}: compiling for input {tuple(x.shape)} (first frame only)",
                       key=f"{what} {tuple(x.shape)}", usually=usually):
            out = fn(x)
        state["first"] = False
        log.info("%s: compiled in %.1f s", what, time.perf_counter() - start)
        return out
    return call


class _ThreadPrimer:
    """Runs one small eager convolution the first time each thread calls the network. Seen on
    an H200: after annotating at batch 8 on one thread, the live pipeline's thread failed to
    record its batch-1 graph (CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED in the
    capture). cuDNN makes a handle per thread; the guess, not yet checked on a GPU
    (benchmarks/compile_threads.py does), is that a thread's first convolution must not be
    inside a capture."""

    def __init__(self, fn, dtype: torch.dtype):
        self.fn, self.dtype, self.local = fn, dtype, threading.local()

    def __call__(self, x):
        if not getattr(self.local, "primed", False):
            small = torch.zeros(1, 1, 8, 8, dtype=self.dtype, device=x.device)
            torch.nn.functional.conv2d(small, torch.zeros(1, 1, 3, 3, dtype=self.dtype,
                                                          device=x.device))
            self.local.primed = True
        return self.fn(x)


def build(request: BuildRequest) -> Runner:
    log.info("torch.compile cache: %s", cache.use_for_torch_compile() or "torch's own default")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = folded(request.model, device)
    dtype = request.dtype
    if device.type == "cpu":
        fn = autocast_forward(model, device, dtype) if dtype == torch.bfloat16 else model
        return Runner(timed_first_call(torch.compile(fn, dynamic=False), "torch.compile (CPU)",
                                       "1-5 min on a CPU"),
                      torch.float32, f"compile (cpu) {short(dtype)}")
    fn = _ThreadPrimer(timed_first_call(
        torch.compile(model.to(dtype), mode="reduce-overhead", dynamic=False),
        "torch.compile with CUDA graphs", "15-40 s on a GPU"), dtype)
    with torch.inference_mode():
        fn(torch.zeros(request.shape, dtype=dtype, device=device))
    return Runner(fn, dtype, f"compile (cuda graphs) {short(dtype)}")


register(Backend("compile", "torch.compile, with CUDA graphs on a GPU (the fastest there at "
                 "batch 1); also on the CPU", device="any", precisions=("fp32", "fp16", "bf16"),
                 build=build))
