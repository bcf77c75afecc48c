"""An independent, functional M2SNet/MSNet forward written from the paper's description.

It reads weights by their checkpoint names from a state dict and uses the authors' dense
all-ones convolution, so it shares no decoder code with the package. Only the Res2Net
backbone comes from timm (the spec states timm's res2net50d is the authors' network).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-5

# (output name, first input, second input) of each subtraction unit, in dependency order.
# "dem_k" are the reduced backbone features; other names are earlier outputs.
SUBTRACTIONS = [
    ("x5_x4", "dem5", "dem4"), ("x4_x3", "dem4", "dem3"), ("x3_x2", "dem3", "dem2"),
    ("x2_x1", "dem2", "x1"),
    ("x5_x4_x3", "x5_x4", "x4_x3"), ("x4_x3_x2", "x4_x3", "x3_x2"),
    ("x3_x2_x1", "x3_x2", "x2_x1"),
    ("x5_x4_x3_x2", "x5_x4_x3", "x4_x3_x2"), ("x4_x3_x2_x1", "x4_x3_x2", "x3_x2_x1"),
    ("x5_x4_x3_x2_x1", "x5_dem_4", "x4_x3_x2_x1"),
]
LEVEL_SUMS = {"level3": ["x4_x3", "x5_x4_x3"],
              "level2": ["x3_x2", "x4_x3_x2", "x5_x4_x3_x2"],
              "level1": ["x2_x1", "x3_x2_x1", "x4_x3_x2_x1", "x5_x4_x3_x2_x1"]}


def _bn(sd, prefix, x):
    return F.batch_norm(x, sd[prefix + ".running_mean"], sd[prefix + ".running_var"],
                        sd[prefix + ".weight"], sd[prefix + ".bias"], False, 0.0, EPS)


def _cbr(sd, name, x):
    x = F.conv2d(x, sd[name + ".0.weight"], sd[name + ".0.bias"], padding=1)
    return F.relu(_bn(sd, name + ".1", x))


def _up(x, ref):
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def _p(sd, k, x):
    c = x.shape[1]
    ones = torch.ones(c, c, k, k, dtype=x.dtype)
    return F.relu(_bn(sd, f"conv_{k}.norm", F.conv2d(x, ones, torch.zeros(c, dtype=x.dtype),
                                                      padding=k // 2)))


def _subtract(sd, a, b, multiscale):
    a = _up(a, b)
    out = (a - b).abs()
    if multiscale:
        for k in (3, 5):
            out = out + (_p(sd, k, a) - _p(sd, k, b)).abs()
    return out


def forward(sd: dict[str, torch.Tensor], features: list[torch.Tensor], image: torch.Tensor):
    """Logits at image size from backbone features x1..x5 and a decoder state dict."""
    multiscale = "conv_3.norm.weight" in sd
    x1, x2, x3, x4, x5 = features
    t = {"x1": x1, "dem5": _cbr(sd, "x5_dem_1", x5), "dem4": _cbr(sd, "x4_dem_1", x4),
         "dem3": _cbr(sd, "x3_dem_1", x3), "dem2": _cbr(sd, "x2_dem_1", x2)}
    for name, a, b in SUBTRACTIONS:
        if name == "x5_x4_x3_x2_x1":
            t["x5_dem_4"] = _cbr(sd, "x5_dem_4", t["x5_x4_x3_x2"])
        t[name] = _cbr(sd, name, _subtract(sd, t[a], t[b], multiscale))
    levels = {"level4": t["x5_x4"]}
    for name, parts in LEVEL_SUMS.items():
        levels[name] = _cbr(sd, name, sum(t[p] for p in parts))
    y = _cbr(sd, "x5_dem_5", x5)
    for out, level in (("output4", "level4"), ("output3", "level3"), ("output2", "level2")):
        y = _cbr(sd, out, _up(y, levels[level]) + levels[level])
    y = _up(y, levels["level1"]) + levels["level1"]
    y = F.conv2d(y, sd["output1.0.weight"], sd["output1.0.bias"], padding=1)
    return _up(y, image)
