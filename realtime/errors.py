"""The runtime's errors: one base, one class per kind of thing that can be wrong. Messages
name the input and say what to do; command lines print them as one line (``one_line``)."""

from __future__ import annotations

from m2snet.errors import one_line

__all__ = ["BackendError", "FrameError", "RealtimeError", "SinkError", "SourceError", "one_line"]


class RealtimeError(Exception):
    """Something the runtime was asked to do that cannot be done here."""


class SourceError(RealtimeError, RuntimeError):
    """An input that cannot be opened or read; the message names it and says why."""


class SinkError(RealtimeError, RuntimeError):
    """An output that cannot be written here; the message says why and what to do instead."""


class BackendError(RealtimeError, RuntimeError):
    """A backend that cannot run here; the message says why and what to use instead."""


class FrameError(RealtimeError, ValueError):
    """A frame the engine cannot take; the message names what was wrong and what is expected."""
