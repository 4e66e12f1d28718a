"""What a client reads of a job carries no server path (issue 15)."""

from __future__ import annotations

from pathlib import Path

from sonorisk.errors import InputError
from sonorisk.serving.jobs import FAILED, JobRunner, JobStore
from sonorisk.serving.redact import job_replacements, redact_document, redact_text

from .conftest import wait_stored  # noqa: TID252

DATA = "/srv/sonorisk data"
UPLOAD = f"{DATA}/uploads/0f3a.avi"


def test_the_upload_becomes_the_client_file_name_and_the_data_folder_is_hidden():
    hidden = job_replacements(UPLOAD, "clinic scan.avi", DATA)
    text = f"{UPLOAD}: frame size changed; scratch in {DATA}/results/tmp1/x.json"
    assert redact_text(text, hidden) == (
        "clinic scan.avi: frame size changed; scratch in <data>/results/tmp1/x.json"
    )


def test_every_string_of_a_document_is_redacted_and_the_rest_kept():
    hidden = job_replacements(UPLOAD, 'odd "name".avi', DATA)
    document = {
        "video": {"source": UPLOAD, "frames": 80},
        "decode": {"messages": [f"{UPLOAD}: 2 frames dropped"], "error": None},
        "risk": 0.25,
        "lesions": [{"boxes": [[1.5, 2, 3, 4]]}],
    }
    out = redact_document(document, hidden)
    assert out["video"] == {"source": 'odd "name".avi', "frames": 80}
    assert out["decode"]["messages"] == ['odd "name".avi: 2 frames dropped']
    assert out["risk"] == 0.25 and out["lesions"] == document["lesions"]
    assert DATA not in str(out)


def test_a_failed_jobs_reason_names_the_upload_not_the_server_path(tmp_path: Path):
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}", owner="a")
    upload = tmp_path / "uploads" / "j1.avi"

    def bad_video(job):
        raise InputError(job.path, f"{job.path}: the frame size changed at frame 20")

    def broken(job):
        raise RuntimeError(f"cannot open {job.path}")

    def redact(job, text):
        return redact_text(text, job_replacements(str(job.path), job.filename, str(tmp_path)))

    for job_id, score in (("input", bad_video), ("service", broken)):
        store.create(job_id, "my scan.avi", upload, 1)
        runner = JobRunner(
            store, tmp_path / "r", score, workers=1, max_attempts=1, heartbeat=False, redact=redact
        )
        runner.submit(job_id)
        job = wait_stored(store, job_id, 60.0)
        assert job.status == FAILED and "my scan.avi" in job.error, job.error
        assert str(tmp_path) not in job.error
        runner.shutdown()
    store.close()
