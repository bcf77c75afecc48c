"""Polyp tracks: the regions of successive masks linked into tracks with stable ids.

The association is ByteTrack's (Roboflow's ``trackers`` package): a Kalman filter predicts
each track's box, boxes are matched by IoU, and a track survives ``lost_after`` seconds
without a match (a polyp hidden by a fold or missed for a few frames keeps its id; one that
leaves the view and comes back after that gets a new one). Our regions are already above the
probability threshold and the minimum area, so all of them take part in the first matching
stage (ByteTrack's second, low-score stage has nothing to work on). A region gets its track id
from the second mask that shows it on; a region seen once stays without one.

Times are the frames' own (pts) offline and capture times live, so a live run that skips
frames still predicts the right distance; a time that goes backwards (a stream restarted)
starts the tracks afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Track:
    id: int                 # 1, 2, ... in order of confirmation
    first_index: int        # frame of the mask that confirmed it (its second)
    first_time: float
    last_index: int
    last_time: float
    masks: int = 1          # masks that showed it

    def dwell(self, time: float) -> float:
        """Seconds since it was first seen."""
        return max(0.0, time - self.first_time)


class PolypTracker:
    def __init__(self, fps: float = 30.0, lost_after: float = 1.0, min_iou: float = 0.1):
        from trackers import ByteTrackTracker  # imported here: supervision is slow to import
        self._byte = ByteTrackTracker(lost_track_buffer=max(1, round(30 * lost_after)),
                                      frame_rate=fps or 30.0, minimum_consecutive_frames=1,
                                      minimum_iou_threshold=min_iou)
        self.tracks: dict[int, Track] = {}
        self._offset = 0            # ids already given before a restart
        self._last_time: float | None = None

    def update(self, regions: list, index: int, time: float) -> dict[int, Track]:
        """One new mask's regions (``overlay.Region``) at its frame; sets each region's
        ``track`` (None while unconfirmed) and returns the tracks by region position."""
        import supervision as sv

        if self._last_time is not None and time < self._last_time:
            self._byte.reset()
            self._offset = max(self.tracks, default=0)
        self._last_time = time
        boxes = np.array([r.box for r in regions], np.float32).reshape(-1, 4)
        detections = sv.Detections(xyxy=boxes, data={"region": np.arange(len(regions))})
        tracked = self._byte.update(detections, timestamp=time)
        found: dict[int, Track] = {}
        if not regions:  # the tracks still age (sv.Detections.empty() carries no data)
            return found
        for position, raw_id in zip(tracked.data["region"], tracked.tracker_id):
            region = regions[int(position)]
            region.track = None
            if raw_id < 0:
                continue
            track_id = int(raw_id) + 1 + self._offset
            track = self.tracks.get(track_id)
            if track is None:
                track = Track(track_id, index, time, index, time)
                self.tracks[track.id] = track
            else:
                track.last_index, track.last_time = index, time
                track.masks += 1
            region.track = track.id
            region.dwell = track.dwell(time)
            found[int(position)] = track
        return found
