"""One segmented frame as a worker sends it back: what the offline outputs need, compact.

A binary mask travels as packed bits, class masks and the drawn layer's labels as bytes, all
zlib-compressed (a 1080p mask is about 2 MB as bools, a few kB like this); the float
probability map travels only when the mask video stores probabilities. Unpacked beside the
frame the stitcher decoded itself, it gives the same ``FrameResult`` as a single process; a
checksum of the worker's pixels proves that both decoded the same frame.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from realtime.io.overlay import MaskLayer, Region
from realtime.io.results import FrameResult
from realtime.io.sources import SourceFrame


@dataclass
class PackedArray:
    data: bytes
    shape: tuple[int, ...]
    dtype: str
    bits: bool = False

    @classmethod
    def of(cls, array: np.ndarray) -> PackedArray:
        bits = array.dtype == bool
        raw = np.packbits(array, axis=None) if bits else np.ascontiguousarray(array)
        return cls(zlib.compress(raw.tobytes(), 1), array.shape, array.dtype.str, bits)

    def unpack(self) -> np.ndarray:
        raw = zlib.decompress(self.data)
        if self.bits:
            count = int(np.prod(self.shape))
            return np.unpackbits(np.frombuffer(raw, np.uint8), count=count).astype(bool) \
                .reshape(self.shape)
        return np.frombuffer(raw, np.dtype(self.dtype)).reshape(self.shape).copy()


def pixel_digest(image: np.ndarray) -> int:
    """A checksum of every 8th row of a frame: the stitcher's frame and the worker's must
    agree (about 0.2 ms at 720p)."""
    return zlib.crc32(np.ascontiguousarray(image[::8]).data)


@dataclass
class PackedFrame:
    pts: int
    digest: int                        # ``pixel_digest`` of the frame the mask was computed on
    mask: PackedArray
    labels: PackedArray | None        # None: the layer's labels are the mask's
    regions: list[Region]
    contours: list[tuple[int, np.ndarray]]
    box: tuple[int, int, int, int] | None
    peak: float | None
    probabilities: PackedArray | None  # only when the outputs store probabilities

    @classmethod
    def of(cls, result: FrameResult, keep_probabilities: bool) -> PackedFrame:
        layer, mask = result.layer, result.mask
        # the drawn labels are the mask unless regions under the minimum area were dropped
        same = sum(region.area for region in layer.regions) == np.count_nonzero(mask)
        return cls(result.pts, pixel_digest(result.image), PackedArray.of(mask),
                   None if same else PackedArray.of(layer.labels), layer.regions,
                   layer.contours, layer.box, result.max_probability,
                   PackedArray.of(result.probabilities) if keep_probabilities else None)

    def unpack(self, frame: SourceFrame) -> FrameResult:
        mask = self.mask.unpack()
        labels = mask.astype(np.uint8, copy=False) if self.labels is None else self.labels.unpack()
        layer = MaskLayer(labels, list(self.regions), list(self.contours), self.box)
        probabilities = None if self.probabilities is None else self.probabilities.unpack()
        return FrameResult(frame, probabilities, mask, layer, frame.index, peak=self.peak)
