"""Phantom datasets on disk: ``write_phantoms`` writes stills or a video sequence of
``m2snet.phantom`` scenes as images/NNNNN.png and masks/NNNNN.png (what ``m2snet phantom``
runs), and says how many frames show a polyp."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from m2snet.files import write_bytes
from m2snet.phantom import VISIBLE_FRACTION, PhantomScene, phantom_still


@dataclass
class PhantomReport:
    written: int       # image/mask pairs
    with_polyp: int    # of which the mask has polyp pixels
    seed: int          # the scene's seed (sequences: the one used, see ``positive_only``)


SEQUENCE_SEARCH = 100  # sequences with positive_only: scenes tried before giving up


def sequence_seed(seed: int, n: int, fps: float, size: int) -> int:
    """The first seed from ``seed`` on whose scene shows, within ``n`` frames at ``fps``, a
    polyp at least ``VISIBLE_FRACTION`` in view (some scenes have no polyp, or the camera
    never passes it)."""
    for candidate in range(seed, seed + SEQUENCE_SEARCH):
        scene = PhantomScene(candidate, size)
        if scene.polyps and any(max(scene.visibility(i / fps)) >= VISIBLE_FRACTION
                                for i in range(n)):
            return candidate
    raise ValueError(f"no scene among seeds {seed}..{seed + SEQUENCE_SEARCH - 1} shows a "
                     f"polyp within {n} frames; ask for more frames")


def write_phantoms(out: Path, n: int, seed: int = 0, size: int = 352,
                   sequence_fps: float | None = None, progress: bool = True,
                   positive_only: bool = False) -> PhantomReport:
    """Write ``n`` frames as out/images/NNNNN.png and out/masks/NNNNN.png (masks 0/255).

    Stills come from independent scenes (seed, seed+1, ...); with ``sequence_fps`` they are
    consecutive frames of one scene. ``positive_only`` keeps only stills that show a polyp
    at least half in view (``VISIBLE_FRACTION``), as curated test sets in PraNet's
    convention do (an empty mask scores 0 there; a frame whose only "polyp" is a sliver of a
    few pixels at the edge of the view is not a polyp image); for a sequence it takes the
    first scene from ``seed`` on that shows such a polyp (the video keeps its polyp-free
    frames). Masks always hold every visible polyp pixel, slivers included. Files appear
    complete or not at all.
    """
    if n < 1 or size < 32:
        raise ValueError(f"need n >= 1 and size >= 32, got n={n}, size={size}")
    from tqdm import tqdm

    images, masks = out / "images", out / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    scene = None
    if sequence_fps:
        if positive_only:
            seed = sequence_seed(seed, n, sequence_fps, size)
        scene = PhantomScene(seed, size)
    candidate = with_polyp = 0
    for i in tqdm(range(n), desc="phantoms", unit="frame", disable=not progress):
        if scene is not None:
            image, mask = scene.frame(t=i / sequence_fps, noise_seed=seed * 100_003 + i)
        else:
            while True:
                image, mask, shown = phantom_still(seed * 100_003 + candidate, size)
                candidate += 1
                if not positive_only or max(shown, default=0.0) >= VISIBLE_FRACTION:
                    break
        with_polyp += bool(mask.any())
        name = f"{i:05d}.png"
        _write_png(images / name, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        _write_png(masks / name, mask)
    return PhantomReport(n, with_polyp, seed)


def _write_png(path: Path, array: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", array)
    if not ok:
        raise OSError(f"could not encode {path}")
    write_bytes(path, data.tobytes())
