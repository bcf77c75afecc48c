"""Phantom procedures: long synthetic colonoscopy videos with per-frame, per-lesion ground
truth, made of what a detection aid is judged on in clinics.

A procedure is a run of stretches cut together (each cut is a jump of the camera to another
part of the colon): long polyp-free stretches, stretches in which a polyp enters the view,
stays and leaves, some with small polyps, and the artefacts that cause false alerts (bright
and dark rims where the wall is close to the lens, bubbles, motion blur, glare flashes) laid
over any of them. The plan is drawn from the seed, so a seed is one procedure.

A lesion is annotated on a frame from the moment ``ANNOTATED_FRACTION`` of the frame shows
it (an annotator marks a polyp once it can be seen, not a two-pixel sliver at the edge); the
ground-truth masks hold exactly the annotated lesions.

    procedure = Procedure(seed=7001, seconds=40, fps=30, size=352)
    for index, image, lesions in procedure.frames():   # lesions: {lesion id: bool mask}
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from m2snet.phantom import VISIBLE_FRACTION, PhantomScene

ANNOTATED_FRACTION = 0.0008            # of the frame's pixels (about 100 at 352 x 352)
SMALL_RADIUS = (0.022, 0.04)           # "small" stretches: 15-28 px polyps at 352
CLEAR_SECONDS = (6.0, 16.0)            # polyp-free stretches
POLYP_SECONDS = (3.0, 6.0)             # stretches with a polyp passing
RIM_COLOUR = {"bright": np.array([255, 228, 214], np.float32), "dark": np.zeros(3, np.float32)}


@dataclass
class Artefacts:
    rim: str | None = None                     # "bright" or "dark", on the side at rim_angle
    rim_angle: float = 0.0
    bubbles: list[tuple[float, float, float]] = field(default_factory=list)  # x, y, r (view)
    blur: list[tuple[int, int, float, int]] = field(default_factory=list)    # start, frames, angle, px
    flashes: list[tuple[int, int]] = field(default_factory=list)             # start, frames


@dataclass
class Stretch:
    kind: str                # "clear" (no polyp), "polyp" or "small" (a small polyp passes)
    scene_seed: int
    first_frame: int
    frames: int
    t0: float                # the scene's camera time at the stretch's first frame
    artefacts: Artefacts

    def scene(self, size: int) -> PhantomScene:
        if self.kind == "clear":
            return PhantomScene(self.scene_seed, size, polyp_probability=0.0)
        radius = SMALL_RADIUS if self.kind == "small" else (0.045, 0.13)
        return PhantomScene(self.scene_seed, size, polyp_probability=1.0, polyp_radius=radius)


class Procedure:
    def __init__(self, seed: int, seconds: float = 60.0, fps: float = 30.0, size: int = 352,
                 name: str | None = None):
        if seconds < POLYP_SECONDS[1] + 1 or fps <= 0 or size < 64:
            raise ValueError(f"a procedure needs at least {POLYP_SECONDS[1] + 1:g} s, fps > 0 "
                             f"and size >= 64, got {seconds:g} s, {fps:g} fps, size {size}")
        self.seed, self.fps, self.size = seed, fps, size
        self.name = name or f"procedure{seed}"
        self.frame_count = int(round(seconds * fps))
        self.stretches = self._plan(np.random.default_rng(seed))

    # -- the plan ----------------------------------------------------------------------
    def _plan(self, rng: np.random.Generator) -> list[Stretch]:
        stretches, first, polyp_next = [], 0, bool(rng.uniform() < 0.3)
        while first < self.frame_count:
            left = self.frame_count - first
            if polyp_next and left >= self.fps * POLYP_SECONDS[0]:
                kind = "small" if rng.uniform() < 0.35 else "polyp"
                frames = min(left, int(rng.uniform(*POLYP_SECONDS) * self.fps))
                seed, t0 = self._polyp_scene(rng, kind, frames)
            else:
                kind, seed = "clear", int(rng.integers(1 << 30))
                frames = min(left, int(rng.uniform(*CLEAR_SECONDS) * self.fps))
                t0 = float(rng.uniform(0, 60))
                room = left - int(POLYP_SECONDS[0] * self.fps)
                if not any(s.kind != "clear" for s in stretches) and frames > room:
                    frames = room  # a short procedure still shows a polyp
            stretches.append(Stretch(kind, seed, first, frames, t0, self._artefacts(rng, frames)))
            first += frames
            polyp_next = not polyp_next
        return stretches

    def _polyp_scene(self, rng: np.random.Generator, kind: str, frames: int) -> tuple[int, float]:
        """A scene and start time in which no polyp shows at first and one comes at least
        half into view during the stretch (it enters; it may leave again)."""
        for _ in range(200):
            seed = int(rng.integers(1 << 30))
            scene = Stretch(kind, seed, 0, frames, 0.0, Artefacts()).scene(self.size)
            if not scene.polyps:
                continue
            for t0 in rng.uniform(0, 60, size=12):
                times = t0 + np.arange(0, frames, 3) / self.fps
                if max(scene.visibility(times[0]), default=1.0) > 0.0:
                    continue
                entering = [max(scene.visibility(t)) for t in times[: len(times) * 2 // 3]]
                if max(entering) >= VISIBLE_FRACTION:
                    return seed, float(t0)
        raise RuntimeError(f"procedure seed {self.seed}: no scene with an entering polyp found")

    def _artefacts(self, rng: np.random.Generator, frames: int) -> Artefacts:
        art = Artefacts()
        if rng.uniform() < 0.4:
            art.rim, art.rim_angle = str(rng.choice(["bright", "dark"])), float(rng.uniform(0, 6.3))
        if rng.uniform() < 0.3:
            art.bubbles = [(float(rng.uniform(0.2, 0.8) * self.size),
                            float(rng.uniform(0.2, 0.8) * self.size),
                            float(rng.uniform(0.015, 0.05) * self.size))
                           for _ in range(int(rng.integers(2, 7)))]
        for _ in range(int(rng.poisson(frames / (self.fps * 6)))):
            art.blur.append((int(rng.integers(frames)), int(rng.integers(4, 16)),
                             float(rng.uniform(0, np.pi)), int(rng.integers(7, 19))))
        if rng.uniform() < 0.25:
            art.flashes.append((int(rng.integers(frames)), int(rng.integers(2, 6))))
        return art

    # -- the frames --------------------------------------------------------------------
    def frames(self) -> Iterator[tuple[int, np.ndarray, dict[str, np.ndarray]]]:
        """Every frame in order: its index, the RGB image and the annotated lesions' masks
        (lesion id -> H x W bool)."""
        min_pixels = ANNOTATED_FRACTION * self.size * self.size
        for number, stretch in enumerate(self.stretches):
            scene = stretch.scene(self.size)
            for i in range(stretch.frames):
                index = stretch.first_frame + i
                t = stretch.t0 + i / self.fps
                image, _ = scene.frame(t, noise_seed=self.seed * 1_000_003 + index)
                labels = scene.labels(t)
                lesions = {}
                for k in range(len(scene.polyps)):
                    mask = labels == k + 1
                    if mask.sum() >= min_pixels:
                        lesions[f"{self.name}_L{number:02d}{k}"] = mask
                yield index, self._degrade(image, stretch.artefacts, i), lesions

    def _degrade(self, image: np.ndarray, art: Artefacts, i: int) -> np.ndarray:
        out = image.astype(np.float32)
        size = self.size
        if art.rim is not None:
            yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) - size / 2) / (size / 2)
            toward = xx * np.cos(art.rim_angle) + yy * np.sin(art.rim_angle)
            weight = (np.clip((toward - 0.45) / 0.5, 0, 1) ** 1.5 * 0.85)[..., None]
            weight *= image.any(axis=2, keepdims=True)  # not outside the field of view
            out = out * (1 - weight) + RIM_COLOUR[art.rim] * weight
        for x, y, r in art.bubbles:
            drift = 0.02 * size * np.array([np.sin(i / 17 + x), np.cos(i / 23 + y)])
            centre = (int(x + drift[0]), int(y + drift[1]))
            ring = np.zeros((size, size), np.float32)
            cv2.circle(ring, centre, max(2, int(r)), 1.0, max(1, int(r / 6)), cv2.LINE_AA)
            cv2.circle(ring, (centre[0] - int(r / 3), centre[1] - int(r / 3)),
                       max(1, int(r / 5)), 1.0, -1, cv2.LINE_AA)
            ring = cv2.GaussianBlur(ring, (0, 0), 0.8)[..., None] * 0.8
            out = out * (1 - ring) + 255 * ring
        for start, frames, angle, length in art.blur:
            if start <= i < start + frames:
                kernel = np.zeros((length, length), np.float32)
                c = (length - 1) / 2
                dx, dy = np.cos(angle) * c, np.sin(angle) * c
                cv2.line(kernel, (int(c - dx), int(c - dy)), (int(c + dx), int(c + dy)), 1.0)
                out = cv2.filter2D(out, -1, kernel / kernel.sum())
        for start, frames in art.flashes:
            if start <= i < start + frames:
                glare = np.zeros((size, size), np.float32)
                rng = np.random.default_rng(start)
                centre = tuple(int(v) for v in rng.uniform(0.3, 0.7, 2) * size)
                axes = tuple(int(v) for v in rng.uniform(0.08, 0.2, 2) * size)
                cv2.ellipse(glare, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
                glare = cv2.GaussianBlur(glare, (0, 0), size / 40)[..., None]
                out = out * (1 - glare) + 255 * glare
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def plan(self) -> list[dict]:
        return [asdict(s) for s in self.stretches]
