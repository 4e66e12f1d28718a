"""Errors of the reader-study harness. Each names the input and the reason; the web
app turns a ``ReadRejected`` into a 4xx answer with that reason."""

from __future__ import annotations

from sonorisk.errors import InputError


class StudyError(InputError):
    """A study cannot be created or opened (bad reader list, missing video or AI result,
    a database at an unknown schema version ...)."""


class ReadRejected(InputError):
    """A reader's request is refused; ``status`` is the HTTP status it maps to."""

    def __init__(self, source: str, reason: str, status: int = 400) -> None:
        self.status = status
        super().__init__(source, reason)
