"""The check after every export: the artefact, loaded in its own runtime, against the float32
network (the ``cpu`` backend's Segmenter) on phantom frames that show a polyp, and both
against the frames' ground truth.

The gate (for reduced precisions; fp32 formats pass it with room to spare): mask Dice against
float32 >= 0.98 over the check frames, and the phantom mDice (per-frame Dice with the ground
truth, averaged) at most 0.01 below float32's."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

CHECK_SEED = 5000         # stills from here on: no training set draws these seeds
CHECK_FRAMES = 32
GATE_DICE = 0.98
GATE_MDICE_DROP = 0.01


def check_frames(count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(N x S x S x 3 uint8 frames, N x S x S bool ground truth): phantom stills from
    ``CHECK_SEED`` on that show a polyp at least half in view."""
    from m2snet.phantom import polyp_stills
    return polyp_stills(count, size, first_seed=CHECK_SEED)


def _probabilities(logits: np.ndarray) -> np.ndarray:
    logits = torch.from_numpy(np.asarray(logits, dtype=np.float32))
    return (logits.sigmoid() if logits.shape[1] == 1 else logits.softmax(dim=1)).numpy()


def _masks(probabilities: np.ndarray) -> np.ndarray:
    """Binary: probability > 0.5; multi-class: anything but class 0 (background)."""
    if probabilities.shape[1] == 1:
        return probabilities[:, 0] > 0.5
    return probabilities.argmax(axis=1) > 0


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def compare(run: Callable[[np.ndarray], np.ndarray], reference: Callable[[np.ndarray], np.ndarray],
            inputs: list[np.ndarray], truth: np.ndarray) -> dict:
    """Run both on every input (1 x 3 x S x S float32) and compare: largest probability
    difference, mask Dice against the reference, the reference's foreground fraction, and
    each one's mDice with the ground truth."""
    got = np.concatenate([_probabilities(run(x)) for x in inputs])
    expected = np.concatenate([_probabilities(reference(x)) for x in inputs])
    masks, expected_masks = _masks(got), _masks(expected)
    mdice = float(np.mean([_dice(m, t) for m, t in zip(masks, truth)]))
    mdice_reference = float(np.mean([_dice(m, t) for m, t in zip(expected_masks, truth)]))
    result = {
        "frames": len(inputs),
        "max_prob_diff": float(np.abs(got - expected).max()),
        "mask_dice": _dice(masks, expected_masks),
        "foreground": float(expected_masks.mean()),
        "mdice": mdice,
        "mdice_fp32": mdice_reference,
        "mdice_drop": mdice_reference - mdice,
    }
    result["passed"] = bool(result["mask_dice"] >= GATE_DICE
                            and result["mdice_drop"] <= GATE_MDICE_DROP)
    return result


def summary_line(result: dict) -> str:
    verdict = "passed" if result["passed"] else "FAILED"
    return (f"check on {result['frames']} phantom frames with a polyp "
            f"({result['foreground']:.1%} foreground): max probability difference "
            f"{result['max_prob_diff']:.2g}, mask Dice vs fp32 {result['mask_dice']:.4f}, "
            f"mDice {result['mdice']:.4f} (fp32 {result['mdice_fp32']:.4f}); gate (Dice >= "
            f"{GATE_DICE}, mDice drop <= {GATE_MDICE_DROP}) {verdict}")
