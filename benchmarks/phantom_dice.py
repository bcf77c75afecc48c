"""How well a checkpoint segments synthetic colonoscopy frames it has never seen.

    python benchmarks/phantom_dice.py                          # the bundled demo model
    python benchmarks/phantom_dice.py --weights runs/phantom/best.pt --json out.json

Frames come from seeds the demo model was not trained on (training used 0..599 of seed 0,
validation seed 1000). Reports the mean per-frame Dice of the mask at probability 0.5 (1 for a
frame where both prediction and truth are empty) through the runtime's Segmenter, the way the
demo sees them. The paper's threshold-swept mDice needs the evaluation command (not built).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from realtime.bench.environment import write_result
from m2snet.phantom import phantom_image
from realtime.engine.segmenter import DEMO_WEIGHTS, Segmenter


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    total = pred.sum() + truth.sum()
    return 1.0 if total == 0 else 2.0 * (pred & truth).sum() / total


def evaluate(weights: Path, n: int, seed: int, size: int) -> dict:
    seg = Segmenter(weights, backend="cpu")
    scores, with_polyp = [], []
    for i in range(n):
        image, mask = phantom_image(seed * 100_003 + i, size)
        pred = seg(image).masks.numpy()
        scores.append(dice(pred, mask > 0))
        if mask.any():
            with_polyp.append(scores[-1])
    return {"weights": str(weights), "frames": n, "seed": seed, "size": size,
            "mean_dice": float(np.mean(scores)),
            "mean_dice_frames_with_polyps": float(np.mean(with_polyp)) if with_polyp else None,
            "frames_with_polyps": len(with_polyp)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=DEMO_WEIGHTS)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument("--size", type=int, default=352)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = evaluate(args.weights, args.n, args.seed, args.size)
    print(f"{result['weights']}: mean Dice {result['mean_dice']:.3f} over {args.n} unseen "
          f"phantom frames ({result['frames_with_polyps']} with polyps: "
          f"{result['mean_dice_frames_with_polyps'] or 0:.3f})")
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
