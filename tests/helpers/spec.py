"""The authors' checkpoint layout, as listed in tests/data/*_state_dict.txt."""

from __future__ import annotations

import ast
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[1] / "data"


def spec_entries(arch: str) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every entry of the authors' checkpoint, in their order."""
    entries = []
    for line in (DATA / f"{arch}_state_dict.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, shape = line.split("\t")
            entries.append((name, tuple(ast.literal_eval(shape))))
    return entries


def authors_state_dict(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict in the authors' exact layout (as listed in the spec)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in spec_entries(arch):
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(1000, dtype=torch.long)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[name] = torch.randn(shape, generator=gen) * 0.05
    return state
