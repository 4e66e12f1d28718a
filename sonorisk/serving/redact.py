"""Keep the server's own paths out of what a client reads.

An upload is stored as ``DATA/uploads/<job_id>.<ext>`` and scored in a
temporary folder under ``DATA/results``; decode notes, error reasons and the
score document can carry those paths. A client should see the name it uploaded
and nothing of the server's layout (issue 15), so every text a job hands back
passes through :func:`redact_text` or :func:`redact_document`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def redact_text(text: str, replacements: Mapping[str, str]) -> str:
    """``text`` with every key of ``replacements`` replaced by its value (longest first,
    so a file inside a folder becomes the file's name, not the folder's)."""
    for path in sorted(replacements, key=len, reverse=True):
        if path:
            text = text.replace(path, replacements[path])
    return text


def redact_document(document: dict[str, Any], replacements: Mapping[str, str]) -> dict[str, Any]:
    """A JSON document with the same replacements in every string it holds."""
    # Paths appear in the JSON text escaped as JSON strings are: replace that form.
    escaped = {json.dumps(k)[1:-1]: json.dumps(v)[1:-1] for k, v in replacements.items()}
    return json.loads(redact_text(json.dumps(document), escaped))


def job_replacements(upload: str, filename: str, data_dir: str) -> dict[str, str]:
    """What a job's texts must not show: its upload path (shown as the client's file
    name) and the service's data folder (shown as ``<data>``)."""
    return {upload: filename, data_dir: "<data>"}
