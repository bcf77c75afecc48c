"""Dataset layouts of the spec, on tiny generated copies: each recognized, masks read as the
convention says (JPEG masks at 128, BUSI's several and colour masks merged, GOALS' four
classes), and an unknown layout named with what was expected."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from m2snet.data import (GOALS_VALUES, LayoutError, SegmentationFolder, find_samples,
                         read_target)


def _img(path, value=100, shape=(16, 16, 3)):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full(shape, value, np.uint8))


def _mask(path, box, shape=(16, 16), channels=None, value=255):
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros(shape + ((channels,) if channels else ()), np.uint8)
    y0, y1, x0, x1 = box
    mask[y0:y1, x0:x1] = value
    cv2.imwrite(str(path), mask)


@pytest.mark.parametrize("images, masks", [("images", "masks"), ("image", "mask"),
                                           ("Imgs", "GT")])
def test_image_and_mask_folders(tmp_path, images, masks):
    for name in ("a", "b"):
        _img(tmp_path / images / f"{name}.jpg")
        _mask(tmp_path / masks / f"{name}.png", (2, 6, 2, 6))
    samples = find_samples(tmp_path)
    assert samples.layout == "folders" and len(samples.items) == 2
    assert read_target(samples.items[0]).sum() == 16


def test_kvasir_jpeg_masks_are_thresholded_at_128(tmp_path):
    _img(tmp_path / "images" / "k.jpg")
    _mask(tmp_path / "masks" / "k.jpg", (0, 8, 0, 16), value=250)  # JPEG: not exactly 255
    target = read_target(find_samples(tmp_path).items[0])
    assert set(np.unique(target)) == {0.0, 1.0}
    assert 120 <= target.sum() <= 136  # 128 pixels give or take JPEG ringing at the edge


def test_busi_merges_several_and_colour_masks(tmp_path):
    _img(tmp_path / "benign" / "benign (1).png")
    _mask(tmp_path / "benign" / "benign (1)_mask.png", (0, 4, 0, 4))
    _mask(tmp_path / "benign" / "benign (1)_mask_1.png", (8, 12, 8, 12), channels=3)
    _img(tmp_path / "malignant" / "malignant (1).png")
    _mask(tmp_path / "malignant" / "malignant (1)_mask.png", (0, 2, 0, 2), channels=4)
    _img(tmp_path / "normal" / "normal (1).png")  # left out: M2SNet's setting
    _mask(tmp_path / "normal" / "normal (1)_mask.png", (0, 0, 0, 0))
    samples = find_samples(tmp_path)
    assert samples.layout == "busi"
    assert [(s.image.name, len(s.masks), s.group) for s in samples.items] == [
        ("benign (1).png", 2, "benign"), ("malignant (1).png", 1, "malignant")]
    assert read_target(samples.items[0]).sum() == 32  # both masks
    assert read_target(samples.items[1]).sum() == 4   # RGBA mask


def test_goals_is_four_classes(tmp_path):
    _img(tmp_path / "Image" / "0001.png")
    mask = np.full((16, 16), 255, np.uint8)
    mask[2:4], mask[4:6], mask[6:8] = 0, 80, 160
    (tmp_path / "Layer_Masks").mkdir()
    cv2.imwrite(str(tmp_path / "Layer_Masks" / "0001.png"), mask)
    samples = find_samples(tmp_path)
    assert samples.layout == "goals" and samples.num_classes == 4
    labels = read_target(samples.items[0], samples.class_values)
    assert [int(labels[r, 0]) for r in (0, 2, 4, 6)] == [0, 1, 2, 3]
    assert GOALS_VALUES[0] == 255  # class 0 is the background
    folder = SegmentationFolder(tmp_path, 16, augment=False)
    _, target = folder[0]
    assert folder.num_classes == 4 and target.dtype == torch.uint8
    assert sorted(target.unique().tolist()) == [0, 1, 2, 3]


def test_sun_seg_sequences(tmp_path):
    for case in ("case1", "case2"):
        for i in range(3):
            _img(tmp_path / "Frame" / case / f"{i}.jpg")
            _mask(tmp_path / "GT" / case / f"{i}.png", (0, 4, 0, 4))
    samples = find_samples(tmp_path)
    assert samples.layout == "sun-seg" and len(samples.items) == 6
    assert [s.group for s in samples.items[:4]] == ["case1"] * 3 + ["case2"]


def test_unknown_layout_says_what_was_expected(tmp_path):
    (tmp_path / "pictures").mkdir()
    with pytest.raises(LayoutError, match=r"not a dataset layout I know; expected one of: "
                                          r"images/ \+ masks/"):
        find_samples(tmp_path)


def test_image_without_mask_is_named(tmp_path):
    _img(tmp_path / "images" / "a.png")
    _img(tmp_path / "images" / "b.png")
    _mask(tmp_path / "masks" / "a.png", (0, 1, 0, 1))
    with pytest.raises(LayoutError, match="1 image.s. without a mask, e.g. b.png"):
        find_samples(tmp_path)


@pytest.mark.parametrize("name, epochs", [("polyp", 50), ("covid", 200), ("busi", 100),
                                          ("goals", 100), ("phantom", 4)])
def test_every_config_loads_with_the_papers_epochs(name, epochs):
    from helpers import ROOT
    from m2snet.train import load_config
    config = load_config(str(ROOT / "configs" / "train" / f"{name}.yaml"),
                         ["data.test=elsewhere"])
    assert config.epochs == epochs and config.data.test == "elsewhere"
