"""Training: configuration rules, the recipe's schedule and loss, and a short real run."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import m2snet
from m2snet.losses import local_mean, structure_loss
from m2snet.phantom_dataset import write_phantoms
from m2snet.train import (ConfigError, TrainConfig, learning_rate, load_config,
                           recalibrate_batchnorm, train, validate)


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


@pytest.mark.parametrize("shape", [(3, 1, 37, 29), (2, 1, 7, 5), (1, 1, 64, 64)])
def test_separable_local_mean_equals_the_31x31_pool(shape):
    mask = (torch.rand(shape, generator=torch.Generator().manual_seed(1)) > 0.6).float()
    torch.testing.assert_close(local_mean(mask), F.avg_pool2d(mask, 31, 1, 15),
                               rtol=0, atol=1e-6)


@pytest.mark.slow
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


def _tiny_run_config(tmp_path, epochs: int):
    if not (tmp_path / "train").exists():
        write_phantoms(tmp_path / "train", n=16, seed=20, size=64, progress=False)
    return load_config(None, [
        "backbone=resnet18", "width=8", "input_size=64", "scales=[64, 96]", f"epochs={epochs}",
        "batch_size=4", "optimizer=sgd", "lr=0.01", "workers=0",
        f"data.train={tmp_path / 'train'}"])


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    """Two epochs, stop, resume for the third: the same weights and log as three in one go
    (optimizer, scaler and every random generator are restored)."""
    straight, chunked = tmp_path / "straight", tmp_path / "chunked"
    train(_tiny_run_config(tmp_path, 3), straight, progress=False)
    first = train(_tiny_run_config(tmp_path, 3), chunked, progress=False, stop_after=2)
    assert [r["epoch"] for r in first["history"]] == [1, 2]
    second = train(_tiny_run_config(tmp_path, 3), chunked, progress=False, resume=True)
    assert [r["epoch"] for r in second["history"]] == [1, 2, 3]
    a = m2snet.load_model(straight / "last.pt")[0].state_dict()
    b = m2snet.load_model(chunked / "last.pt")[0].state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
    lines = (chunked / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_resume_refuses_a_changed_recipe(tmp_path):
    train(_tiny_run_config(tmp_path, 1), tmp_path / "run", progress=False)
    config = _tiny_run_config(tmp_path, 2)
    config.lr = 0.02
    with pytest.raises(ConfigError, match="cannot resume .* with a different lr"):
        train(config, tmp_path / "run", progress=False, resume=True)
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(config, tmp_path / "empty", progress=False, resume=True)


def test_init_starts_from_given_weights_and_refuses_ones_that_do_not_fit(tmp_path):
    """Fine-tuning: with lr 0 a run that starts from a checkpoint keeps its weights (BatchNorm
    statistics aside, which training updates); weights of another width fail in one line."""
    from m2snet.checkpoint import CheckpointError
    train(_tiny_run_config(tmp_path, 1), tmp_path / "first", progress=False)
    config = _tiny_run_config(tmp_path, 1)
    config.init, config.lr = str(tmp_path / "first" / "last.pt"), 0.0
    train(config, tmp_path / "tuned", progress=False)
    before = m2snet.load_model(tmp_path / "first" / "last.pt")[0].state_dict()
    after = m2snet.load_model(tmp_path / "tuned" / "last.pt")[0].state_dict()
    weights = [k for k in before if k.endswith("weight") and before[k].dim() == 4]
    assert weights and all(torch.equal(before[k], after[k]) for k in weights)
    config = _tiny_run_config(tmp_path, 1)
    config.lr = 0.0  # without init the same run keeps its random start instead
    train(config, tmp_path / "fresh", progress=False)
    other = m2snet.load_model(tmp_path / "fresh" / "last.pt")[0].state_dict()
    assert not all(torch.equal(other[k], after[k]) for k in weights)
    config = _tiny_run_config(tmp_path, 1)
    config.init, config.width = str(tmp_path / "first" / "last.pt"), 16
    with pytest.raises(CheckpointError, match="last.pt: does not fit .* mis-shaped"):
        train(config, tmp_path / "wider", progress=False)


def _oct_like(root, n, seed):
    """GOALS layout: layered bands (RNFL, GCIPL, choroid over background) with noise."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(seed)
    (root / "Image").mkdir(parents=True)
    (root / "Layer_Masks").mkdir(parents=True)
    for i in range(n):
        mask = np.full((64, 64), 255, np.uint8)
        top = int(rng.integers(8, 20))
        for value, height in ((0, 8), (80, 10), (160, 12)):
            mask[top:top + height] = value
            top += height + int(rng.integers(2, 6))
        shade = {255: 30, 0: 200, 80: 120, 160: 70}
        image = np.vectorize(shade.get)(mask).astype(np.float32) + rng.normal(0, 12, mask.shape)
        cv2.imwrite(str(root / "Image" / f"{i}.png"), np.clip(image, 0, 255).astype(np.uint8))
        cv2.imwrite(str(root / "Layer_Masks" / f"{i}.png"), mask)


def test_multiclass_training_learns_oct_like_layers(tmp_path):
    _oct_like(tmp_path / "train", 32, 0)
    _oct_like(tmp_path / "val", 8, 1)
    config = load_config(None, [
        "backbone=resnet18", "width=8", "num_classes=4", "input_size=64", "scales=[64]",
        "epochs=10", "batch_size=8", "optimizer=adamw", "lr=0.005", "schedule=constant",
        "workers=0", f"data.train={tmp_path / 'train'}", f"data.val={tmp_path / 'val'}"])
    result = train(config, tmp_path / "run", progress=False)
    scores = [r["val_dice"] for r in result["history"]]
    assert scores[-1] > 0.6 and scores[-1] > scores[0], scores
    model, ckpt = m2snet.load_model(tmp_path / "run" / "best.pt")
    assert ckpt.config.num_classes == 4


def test_class_count_must_match_the_data(tmp_path):
    _oct_like(tmp_path / "train", 8, 0)
    config = load_config(None, ["backbone=resnet18", "width=8", "input_size=64",
                                "batch_size=4", "workers=0", f"data.train={tmp_path / 'train'}"])
    with pytest.raises(ConfigError, match="has 4 class.es. but num_classes=1"):
        train(config, tmp_path / "run", progress=False)


def test_torchrun_two_processes_on_cpu_with_gloo(tmp_path):
    """A real two-process DDP run (torchrun, gloo): one run folder written once, and both
    processes end with the same weights (gradients were averaged)."""
    import subprocess
    import sys

    from helpers import ROOT
    write_phantoms(tmp_path / "train", n=16, seed=30, size=64, progress=False)
    (tmp_path / "c.yaml").write_text(
        "backbone: resnet18\nwidth: 8\ninput_size: 64\nscales: [64, 96]\nepochs: 2\n"
        "batch_size: 4\noptimizer: sgd\nlr: 0.01\nworkers: 0\n"
        f"data:\n  train: {tmp_path / 'train'}\n")
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         "2", "-m", "m2snet", "train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"),
         "--quiet"], capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    sums = sorted(line.split("checksum ")[1] for line in log.splitlines() if "checksum" in line)
    assert len(sums) == 2 and sums[0] == sums[1], log[-3000:]
    assert "2 processes" in log
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    model, _ = m2snet.load_model(tmp_path / "run" / "last.pt")
    saved = sum(float(p.detach().double().sum()) for p in model.parameters())
    assert saved == pytest.approx(float(sums[0]), rel=1e-9)  # the file holds those weights


def test_batchnorm_recalibration_uses_the_plain_average_at_inference_size(tmp_path):
    write_phantoms(tmp_path / "data", 8, seed=4, size=64, progress=False)
    config = TrainConfig(backbone="mobilenetv3_large_100", width=8, input_size=64,
                         scales=[64], batch_size=8, bn_recalibrate=1, seed=3)
    config.data.train = str(tmp_path / "data")
    net = m2snet.create_model("m2snet", config.backbone, 1, width=8)
    first = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    first.running_mean.fill_(100.0)  # stale statistics, as a short run leaves them
    seen = []
    hook = first.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach()))
    recalibrate_batchnorm(net, config, torch.device("cpu"), torch.contiguous_format)
    hook.remove()
    assert len(seen) == 1 and seen[0].shape[0] == 8 and seen[0].shape[-1] == 32
    torch.testing.assert_close(first.running_mean, seen[0].mean(dim=(0, 2, 3)))
    assert first.momentum == 0.1  # restored for any later training
