"""Folding BatchNorm into convolutions: same outputs, every foldable pair found, none other."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import m2snet
from m2snet.calibration import calibrate
from realtime.engine.fold import fold_batchnorm


def _batchnorms(model):
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


@pytest.mark.parametrize("kwargs", [dict(), m2snet.VARIANTS["m2snet-light"],
                                    dict(arch="msnet", backbone="resnet18", width=8)])
def test_folded_network_equals_original(kwargs):
    torch.manual_seed(0)
    model = calibrate(m2snet.create_model(**kwargs), torch.randn(1, 3, 64, 64))
    x = torch.randn(2, 3, 96, 128)
    before = len(_batchnorms(model))
    with torch.no_grad():
        expected = model(x)
    folded, count = fold_batchnorm(model, torch.zeros(1, 3, 64, 64))
    left = _batchnorms(folded)
    # Only the subtraction units' two BatchNorms (fed by window sums) remain.
    assert len(left) == (2 if model.arch == "m2snet" else 0)
    assert count == before - len(left) and count > 0
    with torch.no_grad():  # the original is untouched: same modules, same outputs
        assert len(_batchnorms(model)) == before
        torch.testing.assert_close(model(x), expected, rtol=0, atol=0)
        got = folded(x)
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3 * expected.abs().max())


class _SharedConv(nn.Module):
    """conv1's output feeds its BatchNorm and a skip connection: not foldable."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv1(x)
        return self.bn2(self.conv2(self.bn1(y))) + y


def test_conv_read_by_two_layers_is_not_folded():
    torch.manual_seed(1)
    model = _SharedConv().eval()
    for bn in (model.bn1, model.bn2):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    folded, count = fold_batchnorm(model, torch.zeros(1, 3, 8, 8))
    assert count == 1
    assert isinstance(folded.bn1, nn.BatchNorm2d) and isinstance(folded.bn2, nn.Identity)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)
