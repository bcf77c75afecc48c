"""Independent references for the salient-object metrics that pysodmetrics computes, written
from the papers' definitions (float64, one image at a time, no shared code with the package):
S-measure (Fan et al., ICCV 2017), E-measure (Fan et al., IJCAI 2018), weighted F-measure
(Margolin et al., CVPR 2014). Each takes the prediction prepared as PraNet's convention does
(``prepared``) and the ground truth as a bool mask."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

EPS = np.spacing(1)


def prepared(prediction: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 prediction -> [0, 1], min-max stretched unless constant; truth binarized at 128."""
    p = prediction.astype(np.float64) / 255
    if p.max() > p.min():
        p = (p - p.min()) / (p.max() - p.min())
    return p, truth >= 128


def _similarity_of_object(values: np.ndarray) -> float:
    mean = values.mean()
    return 2 * mean / (mean ** 2 + 1 + values.std(ddof=1) + EPS)


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    n = a.size
    ma, mb = a.mean(), b.mean()
    va, vb = ((a - ma) ** 2).sum() / (n - 1), ((b - mb) ** 2).sum() / (n - 1)
    covariance = ((a - ma) * (b - mb)).sum() / (n - 1)
    numerator, denominator = 4 * ma * mb * covariance, (ma ** 2 + mb ** 2) * (va + vb)
    if numerator != 0:
        return numerator / (denominator + EPS)
    return 1.0 if denominator == 0 else 0.0


def s_measure(p: np.ndarray, g: np.ndarray, alpha: float = 0.5) -> float:
    """alpha * object-aware + (1 - alpha) * region-aware structural similarity."""
    share = g.mean()
    if share == 0:
        return 1 - p.mean()
    if share == 1:
        return p.mean()
    objects = (share * _similarity_of_object(p[g])
               + (1 - share) * _similarity_of_object(1 - p[~g]))
    ys, xs = np.nonzero(g)
    # the four regions meet at the mask's centroid, rounded, as 1-based (MATLAB) indices
    cy, cx = int(np.round(ys.mean())) + 1, int(np.round(xs.mean())) + 1
    h, w = g.shape
    regions = 0.0
    for rows, cols in ((slice(0, cy), slice(0, cx)), (slice(0, cy), slice(cx, w)),
                       (slice(cy, h), slice(0, cx)), (slice(cy, h), slice(cx, w))):
        a, b = p[rows, cols], g[rows, cols].astype(np.float64)
        if a.size:
            regions += a.size / (h * w) * _ssim(a, b)
    return max(0.0, alpha * objects + (1 - alpha) * regions)


def e_measure_curve(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Enhanced alignment of the map binarized at each of 256 levels (0..255)."""
    levels, n = np.floor(p * 255), g.size
    scores = []
    for t in range(256):
        b = levels >= t
        if not g.any():
            enhanced = (~b).sum()
        elif g.all():
            enhanced = b.sum()
        else:
            pb, pg = b - b.mean(), g - g.mean()
            align = 2 * pb * pg / (pb ** 2 + pg ** 2 + EPS)
            enhanced = ((align + 1) ** 2 / 4).sum()
        scores.append(enhanced / (n - 1 + EPS))
    return np.array(scores)


def weighted_f_measure(p: np.ndarray, g: np.ndarray, beta2: float = 1.0) -> float:
    if not g.any():
        return 0.0
    error = np.abs(p - g)
    distance, (iy, ix) = ndimage.distance_transform_edt(~g, return_indices=True)
    spread = error[iy, ix]  # outside the object: the error of its nearest object pixel
    axis = np.arange(7) - 3
    kernel = np.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / (2 * 5.0 ** 2))
    smoothed = ndimage.convolve(spread, kernel / kernel.sum(), mode="constant", cval=0)
    least = np.where(g & (smoothed < error), smoothed, error)
    importance = np.where(g, 1.0, 2 - np.exp(np.log(0.5) / 5 * distance))
    weighted = least * importance
    true_positive, false_positive = g.sum() - weighted[g].sum(), weighted[~g].sum()
    recall = 1 - weighted[g].mean()
    precision = true_positive / (true_positive + false_positive + EPS)
    return (1 + beta2) * recall * precision / (recall + beta2 * precision + EPS)
