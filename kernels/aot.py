"""The Triton subtraction-unit kernels compiled ahead of time for NVIDIA GPUs, on a machine
without one: Triton lowers them to PTX and its bundled ``ptxas`` assembles the cubin for the
chosen architecture (sm_80 A100, sm_90 H100/H200); no driver is involved. ``cuobjdump``
(bundled too) then reports each kernel's registers, spills (local memory) and shared memory,
the numbers that decide occupancy.

    python -m kernels.aot                 # a table: sm_80 and sm_90, fp16, bf16, fp32 inputs
    python -m kernels.aot --out DIR       # also <kernel>.sm_<arch>.<dtype>.{ptx,cubin} and
                                          # resources.json in DIR

Triton's interpreter (TRITON_INTERPRET=1, how the CPU tests run the kernels) replaces the
compiler, so this must run in a process without it.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

ARCHES = (80, 90)
DTYPES = ("fp16", "bf16", "fp32")
_INTS = ("channels", "h_in", "w_in", "height", "width")


def _signatures(dtype: str) -> dict[str, dict[str, str]]:
    ints = {name: "i32" for name in _INTS}
    scales = {"scale_h": "fp32", "scale_w": "fp32"}
    return {
        "_channel_sums": {"a_ptr": f"*{dtype}", "b_ptr": f"*{dtype}", "sums_ptr": "*fp32",
                          **ints, **scales, "BLOCK": "constexpr"},
        "_subtract": {"a_ptr": f"*{dtype}", "b_ptr": f"*{dtype}", "sums_ptr": "*fp32",
                      "out_ptr": f"*{dtype}", "s3_ptr": "*fp32", "t3_ptr": "*fp32",
                      "s5_ptr": "*fp32", "t5_ptr": "*fp32", **ints, **scales,
                      "BLOCK": "constexpr"},
    }


def _tool(name: str) -> Path:
    import triton
    return Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name


def compile_kernels(arch: int, dtype: str = "fp16", block: int | None = None) -> dict[str, dict]:
    """{kernel name: {"cubin": bytes, "ptx": str, "registers", "spill_bytes", "shared_bytes",
    "num_warps"}} for one architecture (80, 90, ...) and input dtype."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from kernels import triton_cuda
    block = block or triton_cuda.BLOCK
    target = GPUTarget("cuda", arch, 32)
    compiled = {}
    for name, signature in _signatures(dtype).items():
        source = ASTSource(fn=getattr(triton_cuda, name), signature=signature,
                           constexprs={"BLOCK": block})
        kernel = triton.compile(source, target=target)
        compiled[name] = {"cubin": kernel.asm["cubin"], "ptx": kernel.asm["ptx"],
                          "num_warps": kernel.metadata.num_warps,
                          **resource_usage(kernel.asm["cubin"])[name]}
    return compiled


def resource_usage(cubin: bytes) -> dict[str, dict[str, int]]:
    """Per kernel in the cubin: registers, spill (local memory) and shared memory bytes, as
    ``cuobjdump --dump-resource-usage`` states them."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kernel.cubin"
        path.write_bytes(cubin)
        text = subprocess.run([str(_tool("cuobjdump")), "--dump-resource-usage", str(path)],
                              capture_output=True, text=True, check=True).stdout
    usage, name = {}, None
    for line in text.splitlines():
        if match := re.match(r"\s*Function (\S+):", line):
            name = match.group(1)
        elif name and "REG:" in line:
            fields = dict(re.findall(r"(\w+(?:\[\d+\])?):(\d+)", line))
            usage[name] = {"registers": int(fields["REG"]), "spill_bytes": int(fields["LOCAL"]),
                           "shared_bytes": int(fields["SHARED"])}
    return usage


def table() -> str:
    rows = ["| arch | dtype | kernel | warps | registers | spill bytes | shared bytes |",
            "|---|---|---|---|---|---|---|"]
    for arch in ARCHES:
        for dtype in DTYPES:
            for name, k in compile_kernels(arch, dtype).items():
                rows.append(f"| sm_{arch} | {dtype} | {name} | {k['num_warps']} | "
                            f"{k['registers']} | {k['spill_bytes']} | {k['shared_bytes']} |")
    return "\n".join(rows)


def write(folder: Path) -> list[dict]:
    """Every architecture and dtype's cubins and PTX into ``folder``, and resources.json."""
    import json
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for arch in ARCHES:
        for dtype in DTYPES:
            for name, k in compile_kernels(arch, dtype).items():
                stem = f"{name.lstrip('_')}.sm_{arch}.{dtype}"
                (folder / f"{stem}.cubin").write_bytes(k["cubin"])
                (folder / f"{stem}.ptx").write_text(k["ptx"])
                rows.append({"arch": arch, "dtype": dtype, "kernel": name, "file": stem,
                             **{key: k[key] for key in ("num_warps", "registers",
                                                        "spill_bytes", "shared_bytes")}})
    (folder / "resources.json").write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    import argparse
    import os
    parser = argparse.ArgumentParser(prog="python -m kernels.aot", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the cubins, PTX and resources.json here")
    args = parser.parse_args()
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        parser.error("TRITON_INTERPRET=1 is set: Triton's interpreter cannot compile; unset it")
    if args.out:
        write(args.out)
    print(table())
