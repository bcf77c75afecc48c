"""Options the README promises, each through the command line a user types: checkpoint
conversion to half precision and another normalization, per-class evaluation of saved class
maps, resuming and time-limited training, annotation's probability masks, PNG masks and COCO;
and the training recipe's parts (augmentation keeps image and mask aligned, LossNet)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

import m2snet
from helpers import run_cli
from helpers.videos import write_video
from m2snet.phantom_dataset import write_phantoms
from realtime.io.writers import read_masks


def test_convert_to_half_precision_and_another_normalization(tiny_weights, tmp_path):
    out = tmp_path / "half.pt"
    done = run_cli("m2snet", "convert", tiny_weights, out, "--half",
                   "--normalization", "authors-training")
    assert done.returncode == 0, done.stderr
    assert "normalization authors-training" in done.stdout
    assert out.stat().st_size < 0.6 * tiny_weights.stat().st_size  # float16 on disk
    original, _ = m2snet.load_model(tiny_weights)
    converted, checkpoint = m2snet.load_model(out)
    assert checkpoint.normalization == m2snet.checkpoint.AUTHORS_TRAINING
    for (name, a), b in zip(original.state_dict().items(), converted.state_dict().values()):
        if a.is_floating_point():  # loading restores float32 from the float16 values
            assert b.dtype == torch.float32
            torch.testing.assert_close(b, a.half().float(), rtol=0, atol=0, msg=name)
    shown = run_cli("m2snet", "inspect", out)
    assert "mean [124.55, 118.9, 102.94]" in shown.stdout


def test_eval_class_values_scores_each_class(tmp_path):
    truth = np.full((4, 4), 255, np.uint8)
    truth[0], truth[1] = 0, 80
    prediction = truth.copy()
    prediction[1, :2] = 0  # half of class 80 predicted as class 0
    for folder, image in (("gt", truth), ("pred", prediction)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "a.png"), image)
    done = run_cli("m2snet", "eval", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt",
                   "--class-values", "0,80,160,255", "--out", tmp_path / "m.json")
    assert done.returncode == 0, done.stderr
    scores = json.loads((tmp_path / "m.json").read_text())["per_class_dice"]
    assert scores == {"0": pytest.approx(2 * 4 / (6 + 4)), "80": pytest.approx(2 * 2 / (2 + 4)),
                      "160": None, "255": 1.0}
    assert "| 80 | 0.666" in done.stdout


@pytest.fixture
def tiny_run(tmp_path):
    write_phantoms(tmp_path / "train", n=8, seed=40, size=64, progress=False)
    config = tmp_path / "c.yaml"
    config.write_text("backbone: resnet18\nwidth: 8\ninput_size: 64\nscales: [64]\nepochs: 2\n"
                      "batch_size: 4\noptimizer: sgd\nlr: 0.01\nworkers: 0\nlossnet: off\n"
                      f"data:\n  train: {tmp_path / 'train'}\n")
    return config


def _epochs(run) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_stopped_after_an_epoch_resumes_from_the_command_line(tiny_run, tmp_path):
    run = tmp_path / "run"
    first = run_cli("m2snet", "train", tiny_run, "--out", run, "--quiet", "--stop-after", "1")
    assert first.returncode == 0, first.stderr[-2000:]
    assert _epochs(run) == [1]
    again = run_cli("m2snet", "train", tiny_run, "--out", run, "--quiet", "--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    assert _epochs(run) == [1, 2]  # epoch 1 was not trained again
    m2snet.load_model(run / "last.pt")


def test_max_minutes_ends_training_early_with_a_valid_run(tiny_run, tmp_path):
    run = tmp_path / "run"
    done = run_cli("m2snet", "train", tiny_run, "--out", run, "max_minutes=0.0001",
                   "epochs=50")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stopping: max_minutes=0.0001 reached" in done.stderr
    assert len(_epochs(run)) < 50
    m2snet.load_model(run / "last.pt")


def test_augmentation_moves_image_and_mask_together(tmp_path):
    """An asymmetric white shape and its mask: after each random flip and rotation the
    image's white pixels must still be the mask's (nearest-neighbour and bilinear
    resampling differ only along the edge)."""
    from m2snet.data import SegmentationFolder
    shape = np.zeros((64, 64), np.uint8)
    cv2.fillPoly(shape, [np.array([[8, 8], [40, 8], [8, 56]])], 255)  # a right triangle
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.dstack([shape] * 3))
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), shape)
    plain = SegmentationFolder(tmp_path, 64, augment=False)[0][1][0].numpy() > 0.5
    augmented = SegmentationFolder(tmp_path, 64, augment=True)
    flipped = 0
    for seed in range(8):
        torch.manual_seed(seed)
        image, mask = augmented[0]
        seen, target = image.float().mean(0).numpy() > 127, mask[0].numpy() > 0.5
        iou = (seen & target).sum() / (seen | target).sum()
        assert iou > 0.9, (seed, iou)
        flipped += (target & plain).sum() < 0.5 * plain.sum()  # mirrored, not just turned
    assert 0 < flipped < 8


def test_lossnet_compares_features_of_prediction_and_mask():
    from m2snet.losses import build_lossnet
    torch.manual_seed(0)
    lossnet = build_lossnet("random")
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 16:40] = 1
    prediction = torch.full_like(mask, 0.5, requires_grad=True)
    assert lossnet(mask.clone(), mask).item() == 0.0
    loss = lossnet(prediction, mask)
    loss.backward()
    assert loss.item() > 0 and prediction.grad.abs().sum() > 0  # it trains the prediction
    assert all(p.grad is None for p in lossnet.parameters())  # and never itself
    with pytest.raises(FileNotFoundError, match="LossNet weights .* not found"):
        build_lossnet("absent_vgg16.pth")


def test_annotate_writes_probabilities_png_masks_and_coco(tmp_path):
    video = tmp_path / "clip.mp4"
    write_video(video, [i / 30 for i in range(5)], 160, 120, phantom=True)
    # the demo model: an untrained one's probabilities sit at 0 or 1 after 8-bit rounding
    done = run_cli("realtime", "annotate", video, "--backend", "cpu",
                   "--out", tmp_path / "out", "--mask-values", "probabilities", "--png-masks",
                   "--coco", "--min-area", "0", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    folder = tmp_path / "out" / "clip"
    masks, _ = read_masks(folder / "masks.mkv")
    pngs = sorted((folder / "masks").iterdir())
    assert len(masks) == len(pngs) == 5
    for stored, png in zip(masks, pngs):  # the same probabilities in both, 0..255
        np.testing.assert_array_equal(cv2.imread(str(png), cv2.IMREAD_UNCHANGED), stored)
    assert len(np.unique(masks[0])) > 2  # probabilities, not a 0/255 mask
    coco = json.loads((folder / "coco.json").read_text())
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["settings"]["mask_values"] == "probabilities"
    assert {a["image_id"] for a in coco["annotations"]} <= {i["id"] for i in coco["images"]}
    assert len(coco["images"]) == summary["frames_with_polyp"]
