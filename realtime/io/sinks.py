"""Where live frames go; several at once. Each sink gets every frame the pipeline shows (a
``FrameResult``, whose overlay is drawn once for all of them) and is closed once, also after
an error or Ctrl-C. The offline outputs are sinks too (``realtime.io.outputs``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2

from realtime.errors import SinkError
from realtime.io.overlay import draw_hud
from realtime.io.results import FrameResult
from realtime.io.writers import MaskWriter, VideoWriter, mask_to_gray

log = logging.getLogger("realtime.sink")


def checked_output(path: Path, suffixes: tuple[str, ...], what: str) -> Path:
    """An output file that can be written, checked before any work starts: the right kind,
    not a folder, in a folder that exists and is writable (nothing is created silently)."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise SinkError(f"{path}: {what} (name the file {suffixes[0]})")
    if path.is_dir():
        raise SinkError(f"{path}: is a folder; give a file name ending in {suffixes[0]}")
    folder = path.parent
    if not folder.is_dir():
        raise SinkError(f"{path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise SinkError(f"{path}: the folder {folder} is not writable")
    return path


def close_all(closables, report: bool = True) -> list[Exception]:
    """Close each of ``closables`` (None skipped) even when others fail; returns the
    failures in order (logged when ``report``: not when the run already failed, for the
    same cause). Outputs must all be released, or a full disk stays full."""
    errors = []
    for closable in closables:
        if closable is None:
            continue
        try:
            closable.close()
        except Exception as error:  # noqa: BLE001  (close the others regardless)
            if report:
                log.warning("closing %s failed: %s", type(closable).__name__, error)
            errors.append(error)
    return errors


def checked_folder(path: Path) -> Path:
    """An output folder that can be written, checked before any work starts: an existing
    writable folder, or a new one whose nearest existing parent is a writable folder."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SinkError(f"{path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "" if existing == path else "cannot be created: "
        raise SinkError(f"{path}: {what}the folder {existing} is not writable")
    return path


class Sink:
    quit_requested = False

    def write(self, view: FrameResult) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class NullSink(Sink):
    """Drops frames: for measuring, or when only the recording and stats matter."""

    def write(self, view: FrameResult) -> None:
        pass


def display_available() -> bool:
    """The GUI build of OpenCV aborts the process without a display: check first."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class WindowSink(Sink):
    """An OpenCV window. Keys: q or Esc quit, space pause, o overlay on/off, h HUD on/off,
    f full screen on/off. Pausing freezes the picture only: recording goes on."""

    HELP = "q quit, space pause, o overlay, h HUD, f full screen"

    def __init__(self, title: str = "M2SNet live", fullscreen: bool = False):
        if not display_available():
            raise SinkError("no display to open a window on (DISPLAY is not set): use "
                            "--no-display, with --record PATH to keep the overlay video")
        self.title = f"{title} ({self.HELP})"
        # resizable, aspect kept, without the Qt build's toolbar and status bar
        cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO
                        | cv2.WINDOW_GUI_NORMAL)
        self.fullscreen = fullscreen
        self._apply_fullscreen()
        self.paused = False
        self.overlay = self.hud = True
        self._shown = False

    def _apply_fullscreen(self) -> None:
        mode = cv2.WINDOW_FULLSCREEN if self.fullscreen else cv2.WINDOW_NORMAL
        cv2.setWindowProperty(self.title, cv2.WND_PROP_FULLSCREEN, mode)

    def write(self, view: FrameResult) -> None:
        if not self.paused:
            if self.overlay:
                image = view.composite if self.hud else view.overlay
            else:
                image = draw_hud(view.raw.copy(), view.hud) if self.hud else view.raw
            if not self._shown and not self.fullscreen:  # a new window starts at frame size
                cv2.resizeWindow(self.title, image.shape[1], image.shape[0])
            cv2.imshow(self.title, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            self._shown = True
        self._handle(cv2.waitKey(1) & 0xFF)
        if self._shown and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.quit_requested = True  # closed with the window manager's button

    def _handle(self, key: int) -> None:
        if key in (ord("q"), 27):
            self.quit_requested = True
        elif key == ord(" "):
            self.paused = not self.paused
        elif key == ord("o"):
            self.overlay = not self.overlay
        elif key == ord("h"):
            self.hud = not self.hud
        elif key == ord("f"):
            self.fullscreen = not self.fullscreen
            self._apply_fullscreen()

    def close(self) -> None:
        cv2.destroyWindow(self.title)
        cv2.waitKey(1)


class RecordSink(Sink):
    """The overlay as H.264 in fragmented MP4 at capture times: a killed run still leaves a
    playable file."""

    def __init__(self, path: Path, rate: float = 30.0):
        self.path = checked_output(path, (".mp4", ".m4v", ".mov"), "recordings are MP4")
        self.rate = rate  # the source's, once it is open
        self.writer: VideoWriter | None = None

    def write(self, view: FrameResult) -> None:
        image = view.composite
        if self.writer is None:
            height, width = image.shape[:2]
            self.writer = VideoWriter(self.path, width, height, rate=self.rate, fragmented=True)
        self.writer.write(self.writer.fit(image), seconds=view.seconds)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            log.debug("recording: %s (%d frames)", self.path, self.writer.frames)  # the CLI prints it

    @property
    def frames(self) -> int:
        return self.writer.frames if self.writer else 0


class MaskSink(Sink):
    """Every segmented frame's mask, lossless (FFV1 in Matroska), at its capture time:
    probabilities as 0..255 or binary masks as 0/255. Fed as each mask is computed (live: not
    only the masks that are shown)."""

    def __init__(self, path: Path, probabilities: bool = False):
        self.path = checked_output(path, (".mkv",), "raw masks are stored as Matroska")
        self.probabilities = probabilities
        self.writer: MaskWriter | None = None

    def write(self, result: FrameResult) -> None:
        binary = result.probabilities is not None and result.probabilities.ndim == 2
        gray = mask_to_gray(result.mask, result.probabilities
                            if self.probabilities and binary else None)
        if self.writer is None:
            self.writer = MaskWriter(self.path, gray.shape[1], gray.shape[0])
        self.writer.write(self.writer.fit(gray, cv2.INTER_NEAREST), seconds=result.seconds)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
