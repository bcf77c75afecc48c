"""Offline inputs: what the names on a command line stand for, and a source for each.

A name is a video file, an image folder (one sequence), or a glob: of images (one sequence) or
of videos (one input each). Names that match nothing come back as errors, in order, so the
other inputs still run; two inputs of the same stem get distinct output names (clip, clip_2).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from realtime.errors import SourceError
from realtime.io.sources import IMAGE_SUFFIXES, FileSource, ImageSource, Source


@dataclass
class InputSpec:
    source: str          # what the user named (a file, a folder, a glob)
    stem: str            # the output folder's name
    kind: str            # "video" or "images"

    def open(self, image_fps: float = 30.0) -> Source:
        if self.kind == "video":
            return FileSource(self.source)
        return ImageSource(self.source, image_fps)


def expand_inputs(names: list[str]) -> list[InputSpec | SourceError]:
    found: list[InputSpec | SourceError] = []
    for name in names:
        path = Path(name)
        if any(c in name for c in "*?[") and not path.exists():
            matches = sorted(Path(m) for m in glob.glob(name) if Path(m).is_file())
            if not matches:
                found.append(SourceError(f"{name}: matches no file"))
            elif all(m.suffix.lower() in IMAGE_SUFFIXES for m in matches):
                found.append(InputSpec(name, matches[0].parent.name or "images", "images"))
            else:
                found.extend(InputSpec(str(m), m.stem, "video") for m in matches
                             if m.suffix.lower() not in IMAGE_SUFFIXES)
        elif path.is_dir():
            found.append(InputSpec(name, path.resolve().name, "images"))
        else:
            found.append(InputSpec(name, path.stem, "video"))
    seen: dict[str, int] = {}
    for spec in found:
        if isinstance(spec, InputSpec):
            seen[spec.stem] = seen.get(spec.stem, 0) + 1
            if seen[spec.stem] > 1:
                spec.stem = f"{spec.stem}_{seen[spec.stem]}"
    return found
