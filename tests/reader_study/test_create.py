"""Study creation: inputs checked with clear errors, per-reader seeded orders, media."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import pytest

from sonorisk.reader_study.create import (
    StudyConfig,
    create_study,
    load_readers,
    plan_steps,
    reader_order,
)
from sonorisk.reader_study.errors import StudyError
from sonorisk.reader_study.store import StudyStore, default_db_url

from .conftest import FRAMES, RISKS, links, make_study


def test_created_study_has_cases_steps_media_and_links(study_template: Path) -> None:
    store = StudyStore.open(default_db_url(study_template))
    try:
        cases = store.cases()
        assert len(cases) == len(RISKS)
        assert {c["ai_risk"] for c in cases} == set(RISKS)
        no_score = [c for c in cases if c["ai_risk"] is None]
        assert [c["ai_status"] for c in no_score] == ["no scorable lesion"]
        for c in cases:
            mp4 = study_template / c["video_file"]
            with av.open(str(mp4)) as container:
                stream = container.streams.video[0]
                assert stream.codec_context.name == "h264"
                assert sum(1 for _ in container.decode(stream)) == FRAMES
            assert c["duration_s"] == pytest.approx(FRAMES / 30.0)
            assert c["code"] not in c["case_id"] and c["case_id"] not in c["video_file"]
            assert (study_template / c["overlay_file"]).is_file()
            assert len(c["heatmaps"]) == (0 if c["ai_risk"] is None else 1)
        for rid in ("R1", "R2"):
            steps = store.steps(rid)
            assert len(steps) == 2 * len(RISKS)
            # unaided then aided, case by case
            assert [s.session for s in steps] == ["unaided", "aided"] * len(RISKS)
            assert all(a.case_id == b.case_id for a, b in zip(steps[::2], steps[1::2], strict=True))
        assert [s.case_id for s in store.steps("R1")] != [s.case_id for s in store.steps("R2")]
        assert store.reader("R2")["password_hash"].startswith("pbkdf2_sha256$")
        assert store.reader("R1")["password_hash"] is None
    finally:
        store.close()
    link_map = links(study_template)
    assert set(link_map) == {"R1", "R2", "admin"}
    assert (study_template / "links.txt").stat().st_mode & 0o077 == 0
    info = json.loads((study_template / "study.json").read_text())
    assert info["cases"] == len(RISKS) and "secret" not in json.dumps(info)


def test_orders_are_seeded_per_reader_and_washout_reshuffles() -> None:
    ids = [f"case{i:02d}" for i in range(12)]
    a = reader_order(ids, "R1", seed=5)
    assert a == reader_order(list(reversed(ids)), "R1", seed=5)  # input order does not matter
    assert sorted(a) == ids and a != ids
    assert a != reader_order(ids, "R2", seed=5)
    assert a != reader_order(ids, "R1", seed=6)
    plan = plan_steps(ids, "R1", seed=5, washout=True)
    unaided = [p["case_id"] for p in plan if p["session"] == "unaided"]
    aided = [p["case_id"] for p in plan if p["session"] == "aided"]
    assert [p["session"] for p in plan] == ["unaided"] * 12 + ["aided"] * 12
    assert unaided == a and sorted(aided) == ids and aided != unaided
    assert [p["position"] for p in plan][:3] == [1, 2, 3]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("reader_id,name\nR1,A\nr1,B\n", "duplicate reader id 'r1'"),
        ("reader_id\nbad id\n", "may hold only letters"),
        ("reader_id,name\n,A\n", "line 2: empty reader id"),
        ("reader_id,password\nR1,short\n", "shorter than 8"),
        ("reader_id,role\nR1,x\n", "unknown column(s) ['role']"),
        ("R1,Reader One\n", "needs a header row"),
    ],
)
def test_bad_reader_lists_are_refused_with_the_reason(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = tmp_path / "readers.csv"
    path.write_text(text)
    with pytest.raises(StudyError, match=None) as exc:
        load_readers(path)
    assert reason in str(exc.value) and str(path) in str(exc.value)


def test_plain_reader_list(tmp_path: Path) -> None:
    path = tmp_path / "readers.txt"
    path.write_text("# readers\nR1\n\nR2\n")
    assert [r.reader_id for r in load_readers(path)] == ["R1", "R2"]


def test_missing_and_invalid_ai_results_and_videos_are_named(
    study_inputs: dict, tmp_path: Path
) -> None:
    ai = tmp_path / "ai"
    shutil.copytree(study_inputs["ai"], ai)
    victim = sorted(ai.glob("*.json"))[0]
    victim.unlink()
    with pytest.raises(StudyError, match=f"no AI result for video '{victim.stem}'"):
        create_study(study_inputs["dataset"], ai, study_inputs["readers"], tmp_path / "s1")
    victim.write_text(json.dumps({"schema": "sonorisk.score", "risk": 2}))
    with pytest.raises(StudyError, match="not a sonorisk score document") as exc:
        create_study(study_inputs["dataset"], ai, study_inputs["readers"], tmp_path / "s2")
    assert victim.name in str(exc.value)
    other = sorted(ai.glob("*.json"))[1]
    shutil.copyfile(other, victim)
    with pytest.raises(StudyError, match="was scored from"):
        create_study(study_inputs["dataset"], ai, study_inputs["readers"], tmp_path / "s3")
    dataset = tmp_path / "dataset"
    shutil.copytree(study_inputs["dataset"], dataset)
    next((dataset / "videos").glob("*.avi")).unlink()
    with pytest.raises(Exception, match="missing|not found"):
        create_study(dataset, study_inputs["ai"], study_inputs["readers"], tmp_path / "s4")


def test_a_second_create_into_the_same_study_is_refused(study: Path, study_inputs: dict) -> None:
    with pytest.raises(StudyError, match="already holds a study"):
        make_study(study_inputs, study)


def test_unknown_case_ids_are_refused(study_inputs: dict, tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="not in the dataset"):
        create_study(
            study_inputs["dataset"],
            study_inputs["ai"],
            study_inputs["readers"],
            tmp_path / "s",
            config=StudyConfig(cases=["nope"]),
        )
