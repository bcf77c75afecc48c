"""Evaluation in PraNet's convention, computed by pysodmetrics.

Predictions are gray maps (0..255, or probabilities), min-max normalized per image; ground
truth is binarized at 128. mDice / mIoU average the per-image Dice / IoU over 256 thresholds
(and over images), maxDice / maxIoU take the best threshold; wFm, Sm (alpha 0.5) and MAE are
per-image means; meanEm / maxEm are the mean and max of the image-averaged E-measure curve.
Secondary columns as the reference's own script computes them: soft Dice (no threshold) and
IoU at 0.5; Sen / Spe at 0.5 (the COVID-19 toolbox's rule).

Video sets (SUN-SEG): each sequence's first and last frames are dropped, metrics are computed
per sequence and averaged over sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from m2snet.errors import M2SNetError

KEYS = ("mDice", "mIoU", "maxDice", "maxIoU", "wFm", "Sm", "meanEm", "maxEm", "MAE")
SECONDARY = ("softDice", "IoU@0.5", "Sen", "Spe")
SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


class EvaluationError(M2SNetError, ValueError):
    """Folders that cannot be evaluated; the message says what is wrong."""


def _metrics():
    try:
        import py_sod_metrics
    except ImportError:
        raise EvaluationError("evaluation needs pysodmetrics: pip install --no-deps -r "
                              "requirements-nodeps.txt") from None
    return py_sod_metrics


class BinaryEvaluator:
    def __init__(self):
        m = _metrics()
        handlers = {name: handler(with_dynamic=True, with_adaptive=False, with_binary=False,
                                  sample_based=True)
                    for name, handler in (("dice", m.DICEHandler), ("iou", m.IOUHandler))}
        self.curves = m.FmeasureV2(metric_handlers=handlers)
        self.sm, self.em, self.wfm, self.mae = m.Smeasure(), m.Emeasure(), \
            m.WeightedFmeasure(), m.MAE()
        self.secondary: dict[str, list[float]] = {k: [] for k in SECONDARY}
        self.images = 0

    def add(self, prediction: np.ndarray, truth: np.ndarray) -> None:
        """``prediction``: H x W uint8 0..255 (or float 0..1); ``truth``: H x W gray, binarized
        at 128 (bool masks count as 0/255). Sizes must agree."""
        if prediction.shape != truth.shape:
            raise EvaluationError(f"prediction {prediction.shape} and mask {truth.shape} differ "
                                  f"in size")
        pred = to_uint8(prediction)
        gt = np.where(truth.astype(bool) if truth.dtype == bool else truth >= 128, 255, 0) \
            .astype(np.uint8)
        for metric in (self.curves, self.sm, self.em, self.wfm, self.mae):
            metric.step(pred=pred, gt=gt)
        p = pred.astype(np.float64) / 255
        if p.max() > p.min():
            p = (p - p.min()) / (p.max() - p.min())
        g = gt > 0
        self.secondary["softDice"].append((2 * (p * g).sum() + 1) / (p.sum() + g.sum() + 1))
        b = p >= 0.5
        inter, union = (b & g).sum(), (b | g).sum()
        self.secondary["IoU@0.5"].append(1.0 if union == 0 else inter / union)
        tp, fn, tn, fp = inter, (~b & g).sum(), (~b & ~g).sum(), (b & ~g).sum()
        self.secondary["Sen"].append(tp / (tp + fn) if tp + fn else 1.0)
        self.secondary["Spe"].append(tn / (tn + fp) if tn + fp else 1.0)
        self.images += 1

    def results(self) -> dict:
        if not self.images:
            raise EvaluationError("nothing to evaluate")
        curves = self.curves.get_results()
        dice, iou = curves["dice"]["dynamic"], curves["iou"]["dynamic"]
        em = self.em.get_results()["em"]["curve"]
        out = {"mDice": dice.mean(), "mIoU": iou.mean(), "maxDice": dice.max(),
               "maxIoU": iou.max(), "wFm": self.wfm.get_results()["wfm"],
               "Sm": self.sm.get_results()["sm"], "meanEm": em.mean(), "maxEm": em.max(),
               "MAE": self.mae.get_results()["mae"]}
        out.update({k: float(np.mean(v)) for k, v in self.secondary.items()})
        return {k: _number(v) for k, v in out.items()} | {"images": self.images}


def _number(value) -> float | None:
    """Rounded for JSON; None where a metric is undefined (e.g. S-measure of a blank map)."""
    value = float(value)
    return round(value, 6) if np.isfinite(value) else None


def to_uint8(prediction: np.ndarray) -> np.ndarray:
    if prediction.dtype == np.uint8:
        return prediction
    if prediction.dtype == bool:
        return prediction.astype(np.uint8) * 255
    return (np.clip(prediction, 0, 1) * 255 + 0.5).astype(np.uint8)


def per_class_dice(pairs, class_values: list[int]) -> dict:
    """Mean Dice per class over images (classes absent from both maps are skipped)."""
    scores: dict[int, list[float]] = {v: [] for v in class_values}
    for prediction, truth in pairs:
        for value in class_values:
            p, g = prediction == value, truth == value
            total = p.sum() + g.sum()
            if total:
                scores[value].append(2 * (p & g).sum() / total)
    return {str(v): round(float(np.mean(s)), 6) if s else None for v, s in scores.items()}


@dataclass
class Pair:
    prediction: Path
    truth: Path
    sequence: str | None = None
    sample: object = None   # the dataset sample (m2snet.data.Sample) when evaluating a model


def _files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in SUFFIXES}


def match_folders(pred: Path, gt: Path) -> list[Pair]:
    """Predictions matched to masks by file stem; sub-folders of ``gt`` are video sequences
    (SUN-SEG: GT/<case>/*.png with predictions in <pred>/<case>/)."""
    for folder, what in ((pred, "prediction"), (gt, "ground-truth")):
        if not folder.is_dir():
            raise EvaluationError(f"{folder}: no such {what} folder")
    cases = sorted(p for p in gt.iterdir() if p.is_dir())
    groups = [(c.name, pred / c.name, c) for c in cases] if cases else [(None, pred, gt)]
    pairs, missing = [], []
    for sequence, p_dir, g_dir in groups:
        masks = _files(g_dir)
        predictions = _files(p_dir) if p_dir.is_dir() else {}
        for stem, mask in masks.items():
            if stem in predictions:
                pairs.append(Pair(predictions[stem], mask, sequence))
            else:
                missing.append(f"{sequence + '/' if sequence else ''}{mask.name}")
    if missing:
        raise EvaluationError(f"{len(missing)} ground-truth mask(s) have no prediction in "
                              f"{pred}, e.g. {missing[0]}")
    if not pairs:
        raise EvaluationError(f"{gt}: no masks ({', '.join(sorted(SUFFIXES))})")
    return pairs


def read_gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise EvaluationError(f"{path}: not a readable image")
    return image


def evaluate_pairs(pairs: list[Pair], predict=None, class_values: list[int] | None = None,
                   read_truth=None) -> dict:
    """Metrics over matched files. ``predict(path, (h, w)) -> map`` replaces reading the
    prediction file (evaluation of a model); ``read_truth(pair)`` replaces reading the mask
    file (datasets whose masks are several files). Sequences follow the video convention."""
    def load(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
        truth = read_truth(pair) if read_truth is not None else read_gray(pair.truth)
        if predict is not None:
            prediction = predict(pair.prediction, truth.shape)
        else:
            prediction = read_gray(pair.prediction)
            if prediction.shape != truth.shape:  # PraNet resizes predictions to the mask
                prediction = cv2.resize(prediction, truth.shape[::-1],
                                        interpolation=cv2.INTER_LINEAR)
        return prediction, truth

    if class_values:
        loaded = [load(p) for p in pairs]
        scores = per_class_dice(loaded, class_values)
        return {"per_class_dice": scores,
                "mDice_classes": round(float(np.mean([v for v in scores.values()
                                                      if v is not None])), 6),
                "images": len(loaded)}
    sequences = sorted({p.sequence for p in pairs if p.sequence is not None})
    if not sequences:
        evaluator = BinaryEvaluator()
        for pair in pairs:
            evaluator.add(*load(pair))
        return evaluator.results()
    per_sequence = {}
    for sequence in sequences:
        frames = [p for p in pairs if p.sequence == sequence][1:-1]  # first and last dropped
        if not frames:
            continue
        evaluator = BinaryEvaluator()
        for pair in frames:
            evaluator.add(*load(pair))
        per_sequence[sequence] = evaluator.results()
    if not per_sequence:
        raise EvaluationError("every sequence has fewer than 3 frames: nothing is left after "
                              "dropping first and last frames")
    result = {k: _number(np.mean([r[k] for r in per_sequence.values() if r[k] is not None]
                                 or [np.nan])) for k in (*KEYS, *SECONDARY)}
    result["sequences"] = len(per_sequence)
    result["images"] = sum(r["images"] for r in per_sequence.values())
    result["per_sequence"] = per_sequence
    return result


def model_predictor(weights: Path, device: str = "cpu"):
    """``predict(image_path, (h, w))``: the model's probabilities at the mask's size, from the
    input the runtime would give it (``m2snet.preprocess``: the same resize and normalization)."""
    import torch
    import torch.nn.functional as F

    import m2snet
    from m2snet.preprocess import resize_normalize
    model, ckpt = m2snet.load_model(weights)
    model = model.to(device).eval()

    @torch.inference_mode()
    def predict(path: Path, shape: tuple[int, int]) -> np.ndarray:
        from m2snet.data import read_rgb
        frame = torch.from_numpy(read_rgb(path)).to(device)[None]
        x = resize_normalize(frame, ckpt.input_size, ckpt.normalization, channels_last=False)
        logits = model(x)
        logits = F.interpolate(logits, size=shape, mode="bilinear", align_corners=False)
        return torch.sigmoid(logits)[0, 0].cpu().numpy()

    return predict


def markdown(result: dict) -> str:
    if "per_class_dice" in result:
        header = "| class value | Dice |\n|---|---|\n"
        return header + "\n".join(f"| {k} | {v} |" for k, v in result["per_class_dice"].items())
    keys = [k for k in (*KEYS, *SECONDARY) if k in result]
    return ("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n| "
            + " | ".join("-" if result[k] is None else f"{result[k]:.3f}" for k in keys) + " |")
