"""Evaluation metrics: hand-worked values, an independent implementation of the threshold
curves, the video convention, per-class Dice, and the command line."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from helpers import run_cli
from helpers import sod_reference
from m2snet.evaluate import BinaryEvaluator, KEYS, evaluate_pairs, match_folders

GT = np.zeros((8, 8), np.uint8)
GT[2:6, 2:6] = 255  # 16 of 64 pixels


def test_hand_worked_perfect_binary_prediction():
    ev = BinaryEvaluator()
    ev.add(GT.copy(), GT)
    r = ev.results()
    # 256 thresholds 255..0: at 255 of them the prediction is the mask (Dice 1, IoU 1); at
    # threshold 0 every pixel is foreground: Dice 2*16/(16+64) = 0.4, IoU 16/64 = 0.25.
    assert r["mDice"] == pytest.approx((255 + 0.4) / 256, abs=1e-6)
    assert r["mIoU"] == pytest.approx((255 + 0.25) / 256, abs=1e-6)
    assert r["maxDice"] == 1.0 and r["maxIoU"] == 1.0 and r["MAE"] == 0.0
    assert r["Sen"] == 1.0 and r["Spe"] == 1.0 and r["IoU@0.5"] == 1.0


def test_hand_worked_constant_prediction():
    ev = BinaryEvaluator()
    ev.add(np.full((8, 8), 128, np.uint8), GT)
    r = ev.results()
    # a constant map is not min-max stretched: every pixel is 128/255
    p = 128 / 255
    assert r["MAE"] == pytest.approx((48 * p + 16 * (1 - p)) / 64, abs=1e-6)
    # thresholds 128..0 select everything (Dice 0.4), 255..129 nothing (Dice 0, no TP)
    assert r["mDice"] == pytest.approx(129 * 0.4 / 256, abs=1e-6)


def _dice_curve(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Independent reference: per-image Dice and IoU at thresholds 255..0 of the min-max
    normalized map, 0 when there is no true positive."""
    p = pred.astype(np.float64)
    if p.max() > p.min():
        p = (p - p.min()) / (p.max() - p.min()) * 255
    p = np.floor(p)  # pysodmetrics bins the normalized map into 256 integer levels
    g = gt >= 128
    dice, iou = [], []
    for t in range(255, -1, -1):
        b = p >= t
        tp = (b & g).sum()
        dice.append(0.0 if tp == 0 else 2 * tp / (b.sum() + g.sum()))
        iou.append(0.0 if tp == 0 else tp / (b | g).sum())
    return np.array(dice), np.array(iou)


def _noisy_pairs(count: int = 5):
    rng = np.random.default_rng(0)
    for _ in range(count):
        gt = np.zeros((40, 50), np.uint8)
        y, x = rng.integers(5, 25, 2)
        gt[y:y + 12, x:x + 15] = 255
        yield np.clip(gt * 0.7 + rng.normal(40, 30, gt.shape), 0, 255).astype(np.uint8), gt


# results are rounded to 6 decimals for JSON: 5e-7 is that rounding; the references agree with
# pysodmetrics to 3.7e-7 (Sm), 1e-9 (curves, Em, wFm, MAE) before it
ROUNDING = 5e-7


def test_threshold_curves_equal_an_independent_implementation():
    ev, dices, ious, maes = BinaryEvaluator(), [], [], []
    for pred, gt in _noisy_pairs():
        ev.add(pred, gt)
        d, i = _dice_curve(pred, gt)
        dices.append(d)
        ious.append(i)
        p, g = sod_reference.prepared(pred, gt)
        maes.append(np.abs(p - g).mean())
    r = ev.results()
    curve_d, curve_i = np.mean(dices, axis=0), np.mean(ious, axis=0)
    assert r["mDice"] == pytest.approx(curve_d.mean(), abs=ROUNDING)
    assert r["maxDice"] == pytest.approx(curve_d.max(), abs=ROUNDING)
    assert r["mIoU"] == pytest.approx(curve_i.mean(), abs=ROUNDING)
    assert r["maxIoU"] == pytest.approx(curve_i.max(), abs=ROUNDING)
    assert r["MAE"] == pytest.approx(np.mean(maes), abs=ROUNDING)


def test_structure_alignment_and_weighted_f_equal_the_papers_definitions():
    ev, sm, em, wfm = BinaryEvaluator(), [], [], []
    for pred, gt in _noisy_pairs():
        ev.add(pred, gt)
        p, g = sod_reference.prepared(pred, gt)
        sm.append(sod_reference.s_measure(p, g))
        em.append(sod_reference.e_measure_curve(p, g))
        wfm.append(sod_reference.weighted_f_measure(p, g))
    r = ev.results()
    assert 0.5 < r["Sm"] < 0.9 and 0.2 < r["wFm"] < 0.6  # a middling map: not 0 or 1 by luck
    assert r["Sm"] == pytest.approx(np.mean(sm), abs=ROUNDING)
    assert r["meanEm"] == pytest.approx(np.mean(em, axis=0).mean(), abs=ROUNDING)
    assert r["maxEm"] == pytest.approx(np.mean(em, axis=0).max(), abs=ROUNDING)
    assert r["wFm"] == pytest.approx(np.mean(wfm), abs=ROUNDING)


def test_secondary_metrics_on_a_hand_worked_imperfect_prediction():
    pred = np.zeros((8, 8), np.uint8)
    pred[2:6, 2:4] = 255  # half of the 16-pixel object: 8 true positives
    pred[0, :4] = 255     # and 4 false positives
    pred[7, 7] = 100      # below 0.5 after stretching (100/255): background
    ev = BinaryEvaluator()
    ev.add(pred, GT)
    r = ev.results()
    assert r["Sen"] == pytest.approx(8 / 16, abs=ROUNDING)
    assert r["Spe"] == pytest.approx(44 / 48, abs=ROUNDING)
    assert r["IoU@0.5"] == pytest.approx(8 / (16 + 4), abs=ROUNDING)
    soft_sum = 12 + 100 / 255  # the stretched map: twelve 1s and one 100/255
    assert r["softDice"] == pytest.approx((2 * 8 + 1) / (soft_sum + 16 + 1), abs=ROUNDING)


def _write(folder, name, image):
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / name), image)


def test_video_convention_drops_first_and_last_frame_per_sequence(tmp_path):
    for case in ("case1", "case2"):
        for i in range(4):
            _write(tmp_path / "gt" / case, f"{i}.png", GT)
            bad = i in (0, 3)  # first and last frames: wrong predictions
            _write(tmp_path / "pred" / case, f"{i}.png", 255 - GT if bad else GT)
    result = evaluate_pairs(match_folders(tmp_path / "pred", tmp_path / "gt"))
    assert result["sequences"] == 2 and result["images"] == 4
    assert result["maxDice"] == 1.0 and set(result["per_sequence"]) == {"case1", "case2"}


def test_per_class_dice(tmp_path):
    gt = np.full((4, 4), 255, np.uint8)
    gt[0] = 0
    gt[1] = 80
    pred = gt.copy()
    pred[1, :2] = 0  # half of class 80 predicted as class 0
    pairs = [(pred, gt)]
    from m2snet.evaluate import per_class_dice
    scores = per_class_dice(pairs, [0, 80, 160, 255])
    assert scores["0"] == pytest.approx(2 * 4 / (6 + 4))
    assert scores["80"] == pytest.approx(2 * 2 / (2 + 4))
    assert scores["160"] is None and scores["255"] == 1.0


def test_eval_command_writes_the_papers_keys(tmp_path):
    for i in range(3):
        _write(tmp_path / "gt", f"m{i}.png", GT)
        _write(tmp_path / "pred", f"m{i}.png", GT)
    done = run_cli("m2snet", "eval", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt",
                   "--out", tmp_path / "metrics.json")
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "metrics.json").read_text())
    assert set(KEYS) <= set(result) and result["images"] == 3
    assert "| mDice | mIoU |" in done.stdout


def test_missing_predictions_fail_in_one_line(tmp_path):
    _write(tmp_path / "gt", "a.png", GT)
    (tmp_path / "pred").mkdir()
    done = run_cli("m2snet", "eval", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt")
    assert done.returncode == 1
    assert done.stderr.strip() == (f"error: 1 ground-truth mask(s) have no prediction in "
                                   f"{tmp_path / 'pred'}, e.g. a.png")


@pytest.mark.slow
def test_bundled_demo_model_reaches_its_goal_on_an_unseen_seed(tmp_path):
    """The README's claim, through --weights/--data: mDice >= 0.8 in PraNet's convention on
    the 100 polyp frames of seed 5000 (the demo model was trained on seed 0)."""
    from m2snet.phantom_dataset import write_phantoms
    from realtime.engine.segmenter import DEMO_WEIGHTS
    write_phantoms(tmp_path / "data", n=100, seed=5000, size=256, progress=False,
                   positive_only=True)
    done = run_cli("m2snet", "eval", "--weights", DEMO_WEIGHTS, "--data", tmp_path / "data",
                   "--out", tmp_path / "m.json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["images"] == 100 and result["mDice"] >= 0.8


def test_pairs_need_matching_names(tmp_path):
    _write(tmp_path / "gt", "a.png", GT)
    _write(tmp_path / "pred", "a.jpg", GT)  # a different suffix still matches by name
    pairs = match_folders(tmp_path / "pred", tmp_path / "gt")
    assert [(p.prediction.name, p.truth.name) for p in pairs] == [("a.jpg", "a.png")]
