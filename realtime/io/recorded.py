"""Sources with a fixed content: video files (looped if asked), image sequences and the
synthetic colonoscopy (with its ground truth)."""

from __future__ import annotations

import glob
import logging
import re
from fractions import Fraction
from pathlib import Path

import cv2

from realtime.errors import SourceError
from realtime.io.decode import VideoDecoder, check_frame_size
from realtime.io.source_base import Source

log = logging.getLogger("realtime.source")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class SyntheticSource(Source):
    def __init__(self, seed: int, size: int, fps: float):
        super().__init__()
        from m2snet.phantom import PhantomScene
        # every synthetic colon has polyps; the camera path makes them come and go
        self.scene = PhantomScene(seed, size, max_polyps=4, polyp_probability=1.0)
        self.fps, self.index = fps, 0
        self.time_base = 1 / Fraction(fps).limit_denominator(1001)  # one tick a frame
        self.width = self.height = size
        self.description = f"synthetic colonoscopy (seed {seed}, {size}x{size}, {fps:g} fps)"

    def _next(self):
        image, truth = self.scene.frame(self.index / self.fps)
        self.index += 1
        return image, self.index - 1, truth


class FileSource(Source):
    """A video file; with ``loop`` it starts again at its end, timestamps continuing."""

    def __init__(self, path: str, loop: bool = False):
        super().__init__()
        self.path, self.loop = path, loop
        if not Path(path).exists():
            raise SourceError(f"{path}: no such file")
        self.decoder = VideoDecoder(path)
        self.fps = self.decoder.fps
        self.time_base = self.decoder.time_base or Fraction(1, 90000)
        self.width, self.height = self.decoder.size
        self.frame_count = self.decoder.frame_count
        self.declared_frames = self.decoder.declared_frames
        self.rotation = self.decoder.rotation
        # the file's display rotation is applied, as players do; the description says so
        upright = f", turned {self.rotation} degrees upright" if self.rotation else ""
        self.description = f"{path} ({self.width}x{self.height}, {self.fps or 0:.3g} fps{upright})"
        self._frames = self.decoder.frames()
        self._offset, self._first_pts, self._pass_last, self.passes = 0, None, None, 1
        self._in_pass = 0

    def _next(self):
        item = next(self._frames, None)
        if item is None:
            self._check_complete()
        if item is None and self.loop and self._pass_last is not None:
            self.damaged += self.decoder.damaged
            self.decoder.close()
            self.decoder = VideoDecoder(self.path)
            self._frames = self.decoder.frames()
            step = max(1, round(1 / ((self.fps or 30.0) * self.time_base)))
            self._offset = self._pass_last + step - (self._first_pts or 0)
            self.passes += 1
            self._in_pass = 0
            item = next(self._frames, None)
        if item is None:
            self.damaged += self.decoder.damaged
            return None
        self._in_pass += 1
        image, _, pts = item
        pts = None if pts is None else pts + self._offset
        if self._first_pts is None:
            self._first_pts = pts
        self._pass_last = pts if pts is not None else self._pass_last
        return image, pts, None

    def _check_complete(self) -> None:
        """Say once when the file ends before the frame count its header declares (a copy cut
        short, a recorder that crashed): the frames up to there are all there is."""
        declared = self.declared_frames
        if self.incomplete is None and declared and self._in_pass < declared:
            reason = f", reading stopped: {self.decoder.error}" if self.decoder.error else ""
            self.incomplete = (f"the file declares {declared} frames; {self._in_pass} could be "
                               f"decoded (truncated or damaged{reason})")
            log.warning("%s: %s", self.path, self.incomplete)

    def close(self) -> None:
        self.decoder.close()


def natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(spec: str) -> list[Path]:
    """The images of a folder or a glob pattern, in natural order (frame2 before frame10)."""
    if Path(spec).is_dir():
        paths = [p for p in Path(spec).iterdir()]
    else:
        paths = [Path(p) for p in glob.glob(spec)]
    return sorted((p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                  key=natural_key)


class ImageSource(Source):
    """An image sequence at ``fps``: image i at i / fps seconds (millisecond ticks). A
    sequence is one video of one size: the most common size among its first images (so that
    one odd image first does not drop all the others); images that cannot be read or have
    another size are skipped, counted and named in a warning."""

    SAMPLE = 5  # images looked at to decide the sequence's size

    def __init__(self, spec: str, fps: float):
        super().__init__()
        self.paths = list_images(spec)
        if not self.paths:
            raise SourceError(f"{spec}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
        self.height, self.width = self._common_size()
        check_frame_size(spec, self.width, self.height)
        self.fps, self.index, self.frame_count = fps, 0, len(self.paths)
        self.description = f"{spec} ({len(self.paths)} images, {fps:g} fps)"

    def _common_size(self) -> tuple[int, int]:
        sizes = []
        for path in self.paths[:self.SAMPLE]:
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if image is not None:
                sizes.append(image.shape[:2])
        if not sizes:
            raise SourceError(f"{self.paths[0]}: not a readable image")
        return max(sizes, key=lambda size: (sizes.count(size), -sizes.index(size)))

    def _next(self):
        while self.index < len(self.paths):
            path, self.index = self.paths[self.index], self.index + 1
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape[:2] != (self.height, self.width):
                self.damaged += 1
                log.warning("%s: %s, skipped", path, "not a readable image" if bgr is None else
                            f"size differs from the first image ({self.width}x{self.height})")
                continue
            ticks = round((self.index - 1) / self.fps / self.time_base)
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), ticks, None
        return None
