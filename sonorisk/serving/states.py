"""The states of jobs and live streams.

str-valued enums: a state is its own string in JSON, in the SQL job store and
in comparisons with stored strings (``JobState.DONE == "done"``), so readers of
the API and rows written before the enums see the same words.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED)


class StreamState(StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    FAILED = "failed"
