"""M2SNet and MSNet: a backbone, ten subtraction units and a top-down decoder.

Attribute names are the authors' checkpoint names (see tests/data/*_state_dict.txt), so
their released files load strictly. ``forward`` follows the paper's figure (Zhao et al.,
arXiv 2303.10894).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from m2snet.blocks import FixedOnesConvBN, SubtractionUnit, cbr, resize_to
from m2snet.encoders import build_encoder, encode

ARCHS = ("m2snet", "msnet")
STRIDE = 32

# Decoder blocks applied to a subtraction unit's output, from the finest pyramid row up.
MSU_BLOCKS = ("x5_x4", "x4_x3", "x3_x2", "x2_x1",
              "x5_x4_x3", "x4_x3_x2", "x3_x2_x1",
              "x5_x4_x3_x2", "x4_x3_x2_x1", "x5_x4_x3_x2_x1")
PLAIN_BLOCKS = ("x5_dem_4", "level3", "level2", "level1", "output4", "output3", "output2")


class M2SNet(nn.Module):
    def __init__(self, arch: str = "m2snet", backbone: str = "res2net50d", num_classes: int = 1,
                 width: int = 64, impl: str = "factored", pretrained_backbone: bool = False):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
        if num_classes < 1 or width < 1:
            raise ValueError(f"num_classes and width must be positive, got {num_classes}, {width}")
        self.arch, self.backbone_name = arch, backbone
        self.num_classes, self.width = num_classes, width

        self.encoder_spec, encoder = build_encoder(backbone, pretrained=pretrained_backbone)
        setattr(self, self.encoder_spec.attribute, encoder)
        c1, c2, c3, c4, c5 = self.encoder_spec.channels

        if arch == "m2snet":
            self.conv_3 = FixedOnesConvBN(width, 3)
            self.conv_5 = FixedOnesConvBN(width, 5)
            p3, p5 = self.conv_3, self.conv_5
        else:
            p3 = p5 = None
        self.subtract = SubtractionUnit(p3, p5, impl)

        self.x5_dem_1 = cbr(c5, width)
        self.x4_dem_1 = cbr(c4, width)
        self.x3_dem_1 = cbr(c3, width)
        self.x2_dem_1 = cbr(c2, width)
        # The authors feed the raw 64-channel stem into the decoder; other backbones'
        # first level is projected to the decoder width.
        self.x1_dem_1 = cbr(c1, width) if c1 != width else None
        for name in MSU_BLOCKS + PLAIN_BLOCKS:
            setattr(self, name, cbr(width, width))
        self.x5_dem_5 = cbr(c5, width)
        self.output1 = nn.Sequential(nn.Conv2d(width, num_classes, 3, padding=1))

    @property
    def impl(self) -> str:
        return self.subtract.impl

    @impl.setter
    def impl(self, value: str) -> None:
        unit = SubtractionUnit(self.subtract.p3, self.subtract.p5, value)
        self.subtract = unit.train(self.training)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return encode(self.encoder_spec, getattr(self, self.encoder_spec.attribute), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected N x 3 x H x W input, got {tuple(x.shape)}")
        if x.shape[-2] % STRIDE or x.shape[-1] % STRIDE:
            raise ValueError(f"input height and width must be multiples of {STRIDE}, got "
                             f"{x.shape[-2]}x{x.shape[-1]}: resize (e.g. to 352x352) first")
        x1, x2, x3, x4, x5 = self.features(x)
        if self.x1_dem_1 is not None:
            x1 = self.x1_dem_1(x1)
        msu = self.subtract

        d5, d4 = self.x5_dem_1(x5), self.x4_dem_1(x4)
        d3, d2 = self.x3_dem_1(x3), self.x2_dem_1(x2)

        x5_4 = self.x5_x4(msu(d5, d4))
        x4_3 = self.x4_x3(msu(d4, d3))
        x3_2 = self.x3_x2(msu(d3, d2))
        x2_1 = self.x2_x1(msu(d2, x1))

        x5_4_3 = self.x5_x4_x3(msu(x5_4, x4_3))
        x4_3_2 = self.x4_x3_x2(msu(x4_3, x3_2))
        x3_2_1 = self.x3_x2_x1(msu(x3_2, x2_1))

        x5_4_3_2 = self.x5_x4_x3_x2(msu(x5_4_3, x4_3_2))
        x4_3_2_1 = self.x4_x3_x2_x1(msu(x4_3_2, x3_2_1))

        x5_4_3_2_1 = self.x5_x4_x3_x2_x1(msu(self.x5_dem_4(x5_4_3_2), x4_3_2_1))

        level4 = x5_4
        level3 = self.level3(x4_3 + x5_4_3)
        level2 = self.level2(x3_2 + x4_3_2 + x5_4_3_2)
        level1 = self.level1(x2_1 + x3_2_1 + x4_3_2_1 + x5_4_3_2_1)

        out4 = self.output4(resize_to(self.x5_dem_5(x5), level4) + level4)
        out3 = self.output3(resize_to(out4, level3) + level3)
        out2 = self.output2(resize_to(out3, level2) + level2)
        out1 = self.output1(resize_to(out2, level1) + level1)
        return resize_to(out1, x)
