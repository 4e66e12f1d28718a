"""Typed errors. Every error that reaches a user names the input and the reason.

Callers catch the family they can handle (a batch catches ``InputError`` and
goes on with the next file; a server maps it to a 4xx answer).
"""

from __future__ import annotations

from pathlib import Path


class SonoriskError(Exception):
    """Base class of every error sonorisk raises on purpose."""


class InputError(SonoriskError):
    """Bad input from the user: the message names what and why."""

    def __init__(self, source: str | Path, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Pickled with its two arguments: the default pickles the message alone,
        # which cannot rebuild it, so an InputError raised in a Ray replica or a
        # worker process reached the caller as "failed to deserialize exception"
        # (and a bad video was retried as if the service had failed).
        return type(self), (self.source, self.reason)


# --- video input -------------------------------------------------------------
class VideoError(InputError):
    """A video could not be opened or read."""


class VideoNotFoundError(VideoError):
    """The file does not exist."""


class EmptyVideoError(VideoError):
    """The file is empty, or holds a video stream with zero frames."""


class NotAVideoError(VideoError):
    """The file is not a video container/codec sonorisk can read."""


class TruncatedVideoError(VideoError):
    """The file ends mid-stream; frames before the cut were delivered."""


class CorruptVideoError(VideoError):
    """Undecodable data that is not a clean truncation."""


class UnsupportedVideoError(VideoError):
    """A readable video sonorisk refuses (absurd dimensions, unknown pixel layout)."""


class StreamTimeoutError(VideoError):
    """A live source did not answer within its open/read timeout."""


class StreamDisconnectedError(VideoError):
    """A live source dropped its connection."""


class ScoringTimeout(InputError):
    """A video was still being scored when its time limit (a job's, a file's) ran out.

    An input error: the same video would take as long again, so it is not retried."""


# --- datasets ----------------------------------------------------------------
class DatasetError(InputError):
    """A dataset folder or annotation file breaks the dataset format."""


# --- configuration -----------------------------------------------------------
class ConfigError(InputError):
    """A config file or flag has an unknown key or a bad value."""
