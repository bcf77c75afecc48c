"""Training: configuration rules, the recipe's schedule and loss, and a short real run."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import m2snet
from m2snet.losses import structure_loss
from m2snet.phantom import write_phantoms
from m2snet.train import ConfigError, TrainConfig, learning_rate, load_config, train, validate


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("backbone: resnet18\nepochs: 3\ndata:\n  train: a\n")
    config = load_config(path, ["lr=0.01", "data.val=b", "scales=[64, 96]"])
    assert (config.backbone, config.epochs, config.lr) == ("resnet18", 3, 0.01)
    assert (config.data.train, config.data.val, config.scales) == ("a", "b", [64, 96])
    assert config.momentum == 0.9 and config.weight_decay == 5e-4  # the recipe's defaults


@pytest.mark.parametrize("text, overrides, message", [
    ("epoch: 3\n", [], "unknown config key 'epoch'"),
    ("", ["data.training=x"], "unknown config key 'data.training'"),
    ("epochs: three\n", [], "epochs takes int"),
    ("", ["lr"], "is not key=value"),
])
def test_bad_configs_are_named(tmp_path, text, overrides, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, overrides)


def test_triangular_schedule_is_the_references():
    config = TrainConfig(epochs=50, lr=0.05)
    rates = [learning_rate(config, e) for e in range(50)]
    assert rates[0] == pytest.approx(0.05 * 2 / 51)
    assert max(rates) == pytest.approx(0.05 * (1 - abs(2 * 25 / 51 - 1)))
    assert rates[-1] == pytest.approx(0.05 * (1 - abs(2 * 50 / 51 - 1)))


def test_structure_loss_by_hand():
    mask = torch.zeros(1, 1, 40, 40)
    mask[..., 10:30, 10:30] = 1
    logits = torch.randn(1, 1, 40, 40, generator=torch.Generator().manual_seed(0))
    weight = 1 + 5 * (F.avg_pool2d(mask, 31, 1, 15) - mask).abs()
    bce = F.binary_cross_entropy_with_logits(logits, mask, reduction="none")
    p = torch.sigmoid(logits)
    expected = ((weight * bce).sum() / weight.sum()
                + 1 - ((p * mask * weight).sum() + 1)
                / (((p + mask) * weight).sum() - (p * mask * weight).sum() + 1))
    torch.testing.assert_close(structure_loss(logits, mask), expected)
    perfect = structure_loss((mask * 2 - 1) * 20, mask)
    assert perfect < 0.01 < structure_loss(-(mask * 2 - 1) * 20, mask)


def test_short_phantom_training_beats_the_untrained_model(tmp_path):
    """About a minute of real training (deterministic: fixed seeds, no workers)."""
    write_phantoms(tmp_path / "train", n=128, seed=10, size=128, progress=False)
    write_phantoms(tmp_path / "val", n=32, seed=11, size=128, progress=False)
    config = load_config(None, [
        "backbone=mobilenetv3_large_100", "width=16", "input_size=128", "scales=[128]",
        "epochs=8", "batch_size=8", "optimizer=adamw", "lr=0.003", "weight_decay=0.0001",
        "schedule=cosine", "workers=0", f"data.train={tmp_path / 'train'}",
        f"data.val={tmp_path / 'val'}"])
    torch.manual_seed(0)
    untrained = m2snet.create_model("m2snet", backbone="mobilenetv3_large_100", width=16)
    from m2snet.data import SegmentationFolder
    from torch.utils.data import DataLoader
    val = DataLoader(SegmentationFolder(tmp_path / "val", 128, augment=False), batch_size=8)
    before = validate(untrained, val, torch.device("cpu"))
    result = train(config, tmp_path / "run", progress=False)
    history = result["history"]
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]
    assert result["best"] > max(0.5, before + 0.2), (before, [h["val_dice"] for h in history])
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, 9))
    model, ckpt = m2snet.load_model(tmp_path / "run" / "best.pt")
    assert ckpt.input_size == 128 and ckpt.extra["val_dice"] == pytest.approx(result["best"])
