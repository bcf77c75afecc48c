"""A long video as chunks that start at keyframes, each decodable on its own (distributed
annotation hands them to different workers).

The plan reads packets only (no decoding): a chunk begins at a keyframe and holds at least
``frames`` packets, so a worker seeks straight to its start without decoding anything it
throws away. A chunk covers the presentation timestamps [start, end) of the stream; the first
chunk has no start (decoded from the file's beginning, as a single pass is) and the last no
end (decoded to wherever the file stops). Files whose packets lack timestamps, or that have a
single keyframe, stay one chunk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import av

from realtime.errors import SourceError
from realtime.io.decode import ffmpeg_reason
from realtime.io.sources import FileSource

log = logging.getLogger("realtime.chunks")


@dataclass(frozen=True)
class Chunk:
    number: int                 # 0, 1, ... in the input's order
    start: int | None           # first pts (a keyframe's); None: the file's beginning
    end: int | None             # pts where the next chunk starts; None: the file's end
    frames: int                 # packets in the chunk (frames, for progress)


def plan_chunks(path: str, frames: int) -> list[Chunk]:
    """``path`` cut into chunks of at least ``frames`` frames at keyframes (0: one chunk)."""
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError) as error:
        raise SourceError(f"{path}: cannot open as video: {ffmpeg_reason(error)}") from None
    with container:
        stream = container.streams.video[0]
        keys, count = [], 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the demuxer's flush packet
                if packet.pts is None:
                    return [Chunk(0, None, None, stream.frames or 0)]
                if packet.is_keyframe:
                    keys.append((count, packet.pts))
                count += 1
        except (av.error.FFmpegError, OSError) as error:
            # a broken tail: the last chunk decodes into it and stops as a single pass does
            log.debug("%s: packet scan stopped: %s", path, ffmpeg_reason(error))
    starts = [0]
    for position, _ in keys[1:] if frames > 0 else []:
        if position - starts[-1] >= frames and count - position >= frames // 2:
            starts.append(position)
    pts_at = dict(keys)
    bounds = [*starts, count]
    return [Chunk(i, None if i == 0 else pts_at[bounds[i]],
                  None if i == len(starts) - 1 else pts_at[bounds[i + 1]],
                  bounds[i + 1] - bounds[i]) for i in range(len(starts))]


class ChunkSource(FileSource):
    """The frames of one chunk of a video file: decoding starts at the chunk's keyframe and
    stops at the next chunk's."""

    def __init__(self, path: str, chunk: Chunk):
        super().__init__(path)
        self.chunk, self.frame_count = chunk, chunk.frames
        self.declared_frames = None  # the header's count is the whole file's, not the chunk's
        self.description = f"{self.description}, chunk {chunk.number}"
        if chunk.start is not None:
            self.decoder.seek(chunk.start)
            self._frames = self.decoder.frames()

    def _next(self):
        while (item := super()._next()) is not None:
            pts = item[1]
            if self.chunk.start is not None and pts is not None and pts < self.chunk.start:
                continue  # (an open GOP's leading frames belong to the chunk before)
            if self.chunk.end is not None and pts is not None and pts >= self.chunk.end:
                return None
            return item
        return None
