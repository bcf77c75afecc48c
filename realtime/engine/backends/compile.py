"""``compile``: torch.compile of the folded network; on a GPU with CUDA graphs
("reduce-overhead"), on the CPU as plain Inductor code. The first frame compiles (logged);
compiled code is cached under the engine cache's ``inductor`` folder."""

from __future__ import annotations

import logging
import time

import torch

from realtime.engine import cache
from realtime.engine.slow_step import slow_step
from realtime.engine.backends import Backend, BuildRequest, Runner, folded, register, short
from realtime.engine.backends.torch_eager import autocast_forward

log = logging.getLogger("realtime.engine")


def timed_first_call(fn, what: str):
    """Log the first call (where compilation happens) and how long it took."""
    state = {"first": True}

    def call(x):
        if not state["first"]:
            return fn(x)
        start = time.perf_counter()
        with slow_step(f"{what}: compiling for input {tuple(x.shape)} (first frame only)",
                       key=f"{what} {tuple(x.shape)}", usually="1-5 min on a CPU"):
            out = fn(x)
        state["first"] = False
        log.info("%s: compiled in %.1f s", what, time.perf_counter() - start)
        return out
    return call


def build(request: BuildRequest) -> Runner:
    log.info("torch.compile cache: %s", cache.use_for_torch_compile() or "torch's own default")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = folded(request.model, device)
    dtype = request.dtype
    if device.type == "cpu":
        fn = autocast_forward(model, device, dtype) if dtype == torch.bfloat16 else model
        return Runner(timed_first_call(torch.compile(fn, dynamic=False), "torch.compile (CPU)"),
                      torch.float32, f"compile (cpu) {short(dtype)}")
    fn = torch.compile(model.to(dtype), mode="reduce-overhead", dynamic=False)
    return Runner(timed_first_call(fn, "torch.compile with CUDA graphs"), dtype,
                  f"compile (cuda graphs) {short(dtype)}")


register(Backend("compile", "torch.compile, with CUDA graphs on a GPU; also on the CPU",
                 device="any", precisions=("fp32", "fp16", "bf16"), build=build))
