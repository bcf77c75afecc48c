"""Fold eval-mode BatchNorm into the convolution that feeds it (an inference-only rewrite).

y = BN(conv(x)) becomes conv'(x) with w' = w * s and b' = (b - mean) * s + beta,
s = gamma / sqrt(var + eps): one pass over the activations fewer per pair, the same result
up to float rounding. Pairs are found by running the network once: a BatchNorm whose input
is exactly a Conv2d's output that nothing else reads. Whatever the backbone names its
layers, that holds; the
subtraction units' BatchNorms (fed by sums, not convolutions) are left alone. The folded
copy is checked against the original before it is returned.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten


def _after_fold(bn: nn.BatchNorm2d) -> nn.Module | None:
    """What stays of a folded BatchNorm: nothing, or the activation timm's BatchNormAct2d
    applies after normalizing. None: a BatchNorm subclass we do not know how to fold."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    if type(bn).__name__ == "BatchNormAct2d" and hasattr(bn, "act"):
        return nn.Sequential(getattr(bn, "drop", nn.Identity()), bn.act)
    return None


# Calls that read a tensor's metadata, not its values: they do not count as a use.
_METADATA = {"__get__", "size", "dim", "numel", "stride", "is_contiguous", "data_ptr",
             "__len__", "element_size", "get_device"}


class _CountUses(TorchFunctionMode):
    """Counts every torch call that reads a watched tensor (modules, operators, methods)."""

    def __init__(self, watched: dict[int, object], uses: dict[int, int]):
        super().__init__()
        self.watched, self.uses = watched, uses

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") not in _METADATA:
            for t in tree_flatten((args, kwargs))[0]:
                if isinstance(t, torch.Tensor) and id(t) in self.watched:
                    self.uses[id(t)] = self.uses.get(id(t), 0) + 1
        return func(*args, **kwargs)


def _conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(conv, bn) names where every output of the conv is read by that BatchNorm alone."""
    names = {module: name for name, module in model.named_modules()}
    outputs: dict[int, nn.Module] = {}      # id(conv output) -> conv
    keep_alive: list[torch.Tensor] = []     # so that ids are not reused during the run
    readers: dict[int, nn.Module] = {}      # id(conv output) -> the BatchNorm that read it
    uses: dict[int, int] = {}

    def after_conv(module, _inputs, output):
        outputs[id(output)] = module
        keep_alive.append(output)

    def before_bn(module, inputs):
        if inputs and id(inputs[0]) in outputs:
            readers[id(inputs[0])] = module

    hooks = []
    for module in model.modules():
        if type(module) is nn.Conv2d:
            hooks.append(module.register_forward_hook(after_conv))
        if isinstance(module, nn.BatchNorm2d):
            hooks.append(module.register_forward_pre_hook(before_bn))
    try:
        with torch.no_grad(), _CountUses(outputs, uses):
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    verdict: dict[nn.Module, nn.Module | None] = {}
    for key, conv in outputs.items():
        bn = readers.get(key) if uses.get(key) == 1 else None
        verdict[conv] = bn if verdict.get(conv, bn) is bn else None
    return [(names[c], names[b]) for c, b in verdict.items() if b is not None]


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)


def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, int]:
    """A folded copy of an eval-mode model and the number of pairs folded; ``example`` is
    an input it accepts (its values do not matter)."""
    original, model = model, copy.deepcopy(model).eval()
    folded = 0
    for conv_name, bn_name in _conv_bn_pairs(model, example):
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        rest = _after_fold(bn)
        if rest is None or conv.out_channels != bn.num_features or not bn.track_running_stats:
            continue
        _replace(model, conv_name, fuse_conv_bn_eval(conv, bn))
        _replace(model, bn_name, rest)
        folded += 1
    with torch.no_grad():
        expected, got = original(example), model(example)
    scale = expected.abs().max().item()
    if not torch.allclose(got, expected, rtol=1e-3, atol=1e-3 * scale + 1e-6):
        raise RuntimeError(f"BatchNorm folding changed the output by "
                           f"{(got - expected).abs().max().item():.3g} (scale {scale:.3g})")
    return model, folded
