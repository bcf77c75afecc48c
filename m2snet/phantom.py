"""Synthetic colonoscopy frames with exact polyp masks (no real data can be fetched here).

A scene is a "world" image larger than the view: mucosa with colour noise, vessels and
concentric haustral folds around a dark lumen, and zero to several polyps (sessile domes or
pedunculated heads on a stalk) with their own texture and shading. A camera looks at a part
of it; moving the camera gives temporally coherent video in which polyps enter and leave.
Each frame then gets the endoscope's look: circular field of view, vignetting, specular
highlights, blur and sensor noise. Masks are exact (the polyps' own pixels, inside the
field of view).

    scene = PhantomScene(seed=3, size=352)
    image, mask = scene.frame(t=1.5)        # RGB uint8 H x W x 3, mask uint8 0/255

Writing them as a dataset (images/ and masks/ PNGs): ``m2snet.phantom_dataset``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WORLD_SCALE = 1.8  # world side / view side: room for the camera to wander


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Band-limited noise in [-1, 1]: random values on a coarse grid, resized smoothly."""
    coarse = rng.uniform(-1, 1, size=(cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC).clip(-1, 1)


@dataclass
class Polyp:
    x: float
    y: float
    radius: float
    harmonics: np.ndarray   # (k, amplitude, phase) rows for an irregular outline
    tint: np.ndarray        # RGB multiplier of the polyp's surface
    stalk: tuple[float, float] | None  # direction and length of a stalk, or None (sessile)

    def outline(self, n: int = 96) -> np.ndarray:
        theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
        r = np.full_like(theta, self.radius)
        for k, amp, phase in self.harmonics:
            r = r * (1 + amp * np.cos(k * theta + phase))
        return np.stack([self.x + r * np.cos(theta), self.y + r * np.sin(theta)], 1)


class PhantomScene:
    """One colon segment; ``frame(t)`` views it from the camera position at time t (s)."""

    def __init__(self, seed: int, size: int = 352, max_polyps: int = 3,
                 polyp_probability: float = 0.8,
                 polyp_radius: tuple[float, float] = (0.045, 0.13)):
        self.rng = np.random.default_rng(seed)
        self.polyp_radius = polyp_radius  # range, as a fraction of the view's side
        self.size = size
        self.world_side = int(round(size * WORLD_SCALE))
        self.max_polyps = max_polyps
        self.polyp_probability = polyp_probability
        self._drift = self.rng.uniform(0, 2 * np.pi, size=6)
        self._speed = self.rng.uniform(0.15, 0.45, size=3)
        self.world, self.world_mask, self.polyps = self._build_world()
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        r = np.hypot(xx - size / 2, yy - size / 2) / (size / 2)
        self._field = r < 0.98  # the endoscope's circular field of view
        self._vignette = (np.clip(1.08 - 0.45 * r ** 2, 0, 1) * self._field)[..., None]
        self._shine_points = self.rng.uniform(0, 1, size=(18, 2)) * self.world_side

    # -- the world ---------------------------------------------------------------------
    def _build_world(self) -> tuple[np.ndarray, np.ndarray, list[Polyp]]:
        rng, side = self.rng, self.world_side
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
        lumen = rng.uniform(0.35, 0.65, size=2) * side
        dist = np.hypot(xx - lumen[0], yy - lumen[1]) / side

        base = np.array([rng.uniform(0.72, 0.9), rng.uniform(0.36, 0.48),
                         rng.uniform(0.30, 0.40)], np.float32)
        colour = np.ones((side, side, 3), np.float32) * base
        colour *= 1 + 0.08 * _smooth_noise(rng, (side, side), 9)[..., None]
        colour *= 1 + 0.04 * _smooth_noise(rng, (side, side), 40)[..., None]

        # Haustral folds: rings around the lumen, bright crests with a shadow beneath.
        angle = np.arctan2(yy - lumen[1], xx - lumen[0])
        wobble = 0.02 * np.sin(3 * angle + rng.uniform(0, 6)) + 0.01 * _smooth_noise(rng, (side, side), 6)
        # log-spaced: folds crowd together towards the far lumen, as in perspective
        phase = np.log(dist + 0.02) * rng.uniform(4.5, 6.5) + 12 * wobble + rng.uniform(0, 6)
        rings = np.sin(phase)
        folds = np.clip(rings, 0, 1) ** 6 * 0.28 - np.clip(-rings, 0, 1) ** 2 * 0.10
        colour *= (1 + folds)[..., None]

        self._draw_vessels(colour)

        # Depth: the lumen is dark and far, the wall near the camera bright.
        depth_light = np.clip(0.12 + 1.6 * dist, 0, 1.15)
        lumen_dark = np.exp(-((dist / rng.uniform(0.07, 0.11)) ** 2))
        colour *= depth_light[..., None]
        colour *= (1 - 0.9 * lumen_dark)[..., None]

        mask = np.zeros((side, side), np.uint8)
        polyps = []
        self.world_labels = np.zeros((side, side), np.uint8)  # 0, or 1 + the polyp's index
        if rng.uniform() < self.polyp_probability:
            for _ in range(rng.integers(1, self.max_polyps + 1)):
                polyp = self._place_polyp(lumen, polyps)
                if polyp is not None:
                    self._draw_polyp(colour, mask, polyp, dist)
                    polyps.append(polyp)
                    self.world_labels[(mask > 0) & (self.world_labels == 0)] = len(polyps)
        return colour, mask, polyps

    def _draw_vessels(self, colour: np.ndarray) -> None:
        rng, side = self.rng, self.world_side
        layer = np.zeros((side, side), np.float32)
        for _ in range(rng.integers(8, 16)):
            p = rng.uniform(0, side, size=2)
            heading = rng.uniform(0, 2 * np.pi)
            points = [p.copy()]
            for _ in range(rng.integers(10, 30)):
                heading += rng.normal(0, 0.35)
                p = p + 8 * np.array([np.cos(heading), np.sin(heading)])
                points.append(p.copy())
            cv2.polylines(layer, [np.array(points, np.int32)], False, 1.0,
                          thickness=int(rng.integers(1, 3)), lineType=cv2.LINE_AA)
        layer = cv2.GaussianBlur(layer, (0, 0), 1.2)
        colour *= (1 - 0.22 * layer[..., None] * np.array([0.4, 1.0, 0.9], np.float32))

    def _place_polyp(self, lumen: np.ndarray, others: list[Polyp]) -> Polyp | None:
        rng, side = self.rng, self.world_side
        for _ in range(20):
            radius = rng.uniform(*self.polyp_radius) * self.size
            xy = rng.uniform(0.15, 0.85, size=2) * side
            if np.hypot(*(xy - lumen)) < 0.12 * side + radius:
                continue  # not inside the dark lumen
            if any(np.hypot(xy[0] - o.x, xy[1] - o.y) < radius + o.radius + 10 for o in others):
                continue
            harmonics = np.array([[k, rng.uniform(0, 0.12 / k), rng.uniform(0, 2 * np.pi)]
                                  for k in range(2, 6)])
            if rng.uniform() < 0.5:   # pale, whitish-pink adenoma
                tint = np.array([rng.uniform(1.1, 1.25), rng.uniform(1.25, 1.6),
                                 rng.uniform(1.2, 1.55)], np.float32)
            else:                     # congested, redder lesion
                tint = np.array([rng.uniform(1.05, 1.2), rng.uniform(0.75, 0.9),
                                 rng.uniform(0.75, 0.95)], np.float32)
            stalk = None
            if rng.uniform() < 0.35:
                stalk = (rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 1.8) * radius)
            return Polyp(float(xy[0]), float(xy[1]), float(radius), harmonics, tint, stalk)
        return None

    def _draw_polyp(self, colour: np.ndarray, mask: np.ndarray, polyp: Polyp,
                    dist: np.ndarray) -> None:
        rng, side = self.rng, self.world_side
        shape = np.zeros((side, side), np.uint8)
        if polyp.stalk is not None:
            direction, length = polyp.stalk
            end = (polyp.x + length * np.cos(direction), polyp.y + length * np.sin(direction))
            cv2.line(shape, (int(polyp.x), int(polyp.y)), (int(end[0]), int(end[1])), 255,
                     thickness=max(3, int(polyp.radius * 0.55)), lineType=cv2.LINE_8)
        cv2.fillPoly(shape, [np.round(polyp.outline()).astype(np.int32)], 255, cv2.LINE_8)
        inside = shape > 0
        mask[inside] = 255

        # Dome shading: brightest towards the light (a random side), darker rim, own texture.
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
        light = rng.uniform(0, 2 * np.pi)
        lx, ly = polyp.x + 0.35 * polyp.radius * np.cos(light), polyp.y + 0.35 * polyp.radius * np.sin(light)
        r = np.hypot(xx - lx, yy - ly) / (1.3 * polyp.radius)
        dome = np.clip(1.35 - 0.7 * r ** 2, 0.55, 1.35)
        shine = np.exp(-(r / 0.12) ** 2) * 0.9  # the highlight on the dome's top
        edge = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), max(1.0, polyp.radius * 0.12))
        texture = 1 + 0.1 * _smooth_noise(rng, (side, side), int(side / polyp.radius * 2))
        surface = colour * polyp.tint * (dome * texture)[..., None]
        surface = surface * (1 - shine[..., None]) + shine[..., None] * 1.1
        weight = edge[..., None]
        colour[:] = colour * (1 - weight) + surface * weight
        # A thin shadow ring where the polyp meets the wall.
        ring = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 2.5) - inside
        colour *= (1 - 0.35 * np.clip(ring, 0, 1))[..., None]

    # -- the camera --------------------------------------------------------------------
    def camera(self, t: float) -> np.ndarray:
        """2 x 3 affine map from world to view at time t: a slow wander, zoom and roll."""
        d, s = self._drift, self._speed
        span = (self.world_side - self.size) / 2
        cx = self.world_side / 2 + span * 0.95 * np.sin(s[0] * t + d[0]) * np.cos(0.3 * s[1] * t + d[1])
        cy = self.world_side / 2 + span * 0.95 * np.sin(s[1] * t + d[2])
        zoom = 1.0 + 0.18 * np.sin(s[2] * t + d[3])
        roll = 0.25 * np.sin(0.2 * s[0] * t + d[4])
        matrix = cv2.getRotationMatrix2D((float(cx), float(cy)), float(np.degrees(roll)), float(zoom))
        matrix[:, 2] += np.array([self.size / 2 - cx, self.size / 2 - cy])
        return matrix

    def frame(self, t: float = 0.0, noise_seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        size = self.size
        matrix = self.camera(t)
        view = cv2.warpAffine(self.world, matrix, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)
        mask = cv2.warpAffine(self.world_mask, matrix, (size, size), flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        rng = np.random.default_rng(noise_seed if noise_seed is not None
                                    else int(t * 1000) + 7919)
        view = self._specular(view, matrix, rng)
        view = cv2.GaussianBlur(view, (0, 0), rng.uniform(0.6, 1.3))
        noise = np.empty(view.shape, np.float32)
        cv2.setRNGSeed(int(rng.integers(2 ** 31)))  # cv2's generator is fast; seed it from ours
        cv2.randn(noise, 0.0, 0.012)
        view += noise

        view *= self._vignette
        mask = np.where(self._field, mask, 0).astype(np.uint8)
        image = (np.clip(view, 0, 1) * 255 + 0.5).astype(np.uint8)
        return image, mask

    def labels(self, t: float = 0.0) -> np.ndarray:
        """frame(t)'s polyps apart: 0 background, k + 1 the pixels of ``polyps[k]`` (the
        union is frame(t)'s mask)."""
        labels = cv2.warpAffine(self.world_labels, self.camera(t), (self.size, self.size),
                                flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=0)
        return np.where(self._field, labels, 0).astype(np.uint8)

    def visibility(self, t: float = 0.0) -> list[float]:
        """For each polyp, the fraction of it that frame(t) shows (inside the view and the
        circular field): 1 fully in view, small for a sliver at the edge, 0 out of view."""
        matrix = self.camera(t)
        shown = np.bincount(self.labels(t).ravel(), minlength=len(self.polyps) + 1)[1:]
        world = np.bincount(self.world_labels.ravel(), minlength=len(self.polyps) + 1)[1:]
        zoom2 = abs(np.linalg.det(matrix[:, :2]))  # world pixels -> view pixels
        return [float(min(1.0, s / (w * zoom2))) if w else 0.0 for s, w in zip(shown, world)]

    def _specular(self, view: np.ndarray, matrix: np.ndarray, rng) -> np.ndarray:
        """Small saturated reflections, fixed on the wall (they move with the camera)."""
        points = np.c_[self._shine_points, np.ones(len(self._shine_points))] @ matrix.T
        glare = np.zeros(view.shape[:2], np.float32)
        for (x, y), scale in zip(points, rng.uniform(0.6, 1.4, len(points))):
            if 0 <= x < self.size and 0 <= y < self.size:
                axes = (max(1, int(3 * scale)), max(1, int(1.6 * scale)))
                cv2.ellipse(glare, (int(x), int(y)), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        glare = cv2.GaussianBlur(glare, (0, 0), 1.0)
        return view * (1 - glare[..., None]) + glare[..., None] * 1.0


VISIBLE_FRACTION = 0.5  # --positive-only: a polyp at least this much in view


def phantom_image(seed: int, size: int = 352) -> tuple[np.ndarray, np.ndarray]:
    """One independent still: its own scene, viewed at a seed-dependent time."""
    image, mask, _ = phantom_still(seed, size)
    return image, mask


def polyp_stills(count: int, size: int, first_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N x S x S x 3 frames, N x S x S bool masks): the stills from ``first_seed`` on whose
    scene shows a polyp at least ``VISIBLE_FRACTION`` in view, for checks that must compare
    polyps, not two empty masks."""
    frames, masks, seed = [], [], first_seed
    while len(frames) < count:
        image, mask, shown = phantom_still(seed, size)
        seed += 1
        if max(shown, default=0.0) >= VISIBLE_FRACTION:
            frames.append(image)
            masks.append(mask > 0)
    return np.stack(frames), np.stack(masks)


def phantom_still(seed: int, size: int = 352) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """``phantom_image`` and each polyp's visible fraction (``PhantomScene.visibility``)."""
    scene = PhantomScene(seed, size)
    t = float(np.random.default_rng(seed).uniform(0, 60))
    image, mask = scene.frame(t=t, noise_seed=seed)
    return image, mask, scene.visibility(t)
