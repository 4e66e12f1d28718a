"""Choosing the lesion rules on development runs (sonorisk.eval.lesion_rules)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sonorisk.eval.lesion_rules import DevLesion, DevVideo, choose, fit_confidence
from sonorisk.pipeline.lesions import LesionEvidence, confidence_of


def _development(seed: int = 0) -> list[DevVideo]:
    """Lesion sweeps whose one true lesion the detector scores high, with now and
    then a short false track; lesion-free sweeps whose false tracks last the whole
    sweep (what synthetic sweeps of a still give): so length argues *against* a
    lesion here, as in sonorisk-busi 1.2.0's development runs."""
    rng = np.random.default_rng(seed)
    videos = []
    for i in range(60):
        malignant = i % 3 == 0
        risk = float(np.clip(rng.normal(0.75 if malignant else 0.3, 0.15), 0.01, 0.99))
        true = DevLesion(
            LesionEvidence(float(rng.uniform(0.55, 0.99)), int(rng.integers(10, 40)), 0.8),
            True,
            risk,
            (risk, risk),
        )
        lesions = [true]
        if i % 4 == 0:
            lesions.append(
                DevLesion(
                    LesionEvidence(float(rng.uniform(0.3, 0.7)), int(rng.integers(5, 15)), 0.4),
                    False,
                    0.5,
                    (0.5,),
                )
            )
        videos.append(DevVideo(f"l{i}", "malignant" if malignant else "benign", tuple(lesions)))
    for i in range(30):
        false = DevLesion(
            LesionEvidence(float(rng.uniform(0.3, 0.75)), 48, 0.5), False, 0.6, (0.6,)
        )
        videos.append(DevVideo(f"n{i}", "normal", (false,)))
    return videos


def test_the_fit_is_monotone_unless_told_otherwise() -> None:
    videos = _development()
    free = fit_confidence(videos, monotone=False)
    assert free.frames < 0 < free.detector  # the synthetic trait, fitted as it is
    model = fit_confidence(videos)
    assert model.frames == 0.0 and model.detector > 0 and model.check >= 0
    assert model.max_frames == 48
    # More of any evidence never lowers the monotone model's confidence.
    base = LesionEvidence(0.7, 10, 0.6)
    for more in (LesionEvidence(0.8, 10, 0.6), LesionEvidence(0.7, 40, 0.6),
                 LesionEvidence(0.7, 10, 0.9)):  # fmt: skip
        assert confidence_of(more, model) >= confidence_of(base, model)
    # ... while the free fit lets a longer track lose confidence.
    assert confidence_of(LesionEvidence(0.7, 40, 0.6), free) < confidence_of(base, free)


def test_choose_picks_the_threshold_that_gives_one_lesion_and_no_false_one() -> None:
    videos = _development()
    chosen, table = choose(videos, fit_confidence(videos))
    best = chosen["development"]
    objective = [r["exactly_one"] - r["scored_per_lesion_free_sweep"] for r in table]
    assert best["exactly_one"] - best["scored_per_lesion_free_sweep"] == pytest.approx(
        max(objective)
    )
    # At threshold 0.05 nearly everything is scored: false lesions on lesion-free sweeps.
    assert table[0]["scored_per_lesion_free_sweep"] > best["scored_per_lesion_free_sweep"]
    assert chosen["risk_rule"] == "most_confident_lesion"  # ties go to the safe rule
    assert chosen["development"][f"auc_{chosen['risk_rule']}"] > 0.9


def test_rules_written_by_a_fit_evaluate_to_the_same_point(tmp_path, monkeypatch) -> None:
    from sonorisk.errors import ConfigError, InputError
    from sonorisk.eval import lesion_rules
    from sonorisk.pipeline.lesions import LesionRules

    videos = _development()
    monkeypatch.setattr(lesion_rules, "read_run", lambda d, root: videos)
    fitted = tmp_path / "rules.json"
    assert lesion_rules.main(["--run", "runs", "data", "--out", str(fitted)]) == 0
    chosen = lesion_rules.load_rules(str(fitted))
    assert chosen.min_confidence == json.loads(fitted.read_text())["chosen"]["min_confidence"]
    point = tmp_path / "point.json"
    args = ["--run", "runs", "data", "--out", str(point)]
    assert lesion_rules.main([*args, "--evaluate", str(fitted)]) == 0
    got = json.loads(point.read_text())
    want = json.loads(fitted.read_text())["chosen"]["development"]
    assert got["exactly_one"] == want["exactly_one"] and got["threshold"] == want["threshold"]
    assert got["auc"] == want[f"auc_{got['risk_rule']}"]
    # "defaults": sonorisk's own rules, at their threshold.
    assert lesion_rules.main([*args, "--evaluate", "defaults"]) == 0
    assert json.loads(point.read_text())["threshold"] == LesionRules().min_confidence
    # Files that are not rules are named in the error.
    (tmp_path / "bad.json").write_text('{"table": []}')
    with pytest.raises(InputError, match="bad.json"):
        lesion_rules.load_rules(str(tmp_path / "bad.json"))
    document = json.loads(fitted.read_text())
    document["chosen"]["risk_rule"] = "loudest"
    (tmp_path / "rule.json").write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="risk_rule"):
        lesion_rules.load_rules(str(tmp_path / "rule.json"))


def _run_on_disk(tmp_path, with_groups: bool = True):
    """A three-video dataset (two groups) with a lesion box on every frame of v1
    and v3, and score JSONs: one lesion on the marked box and one beside it."""
    from sonorisk.data.format import DatasetWriter
    from sonorisk.io.writer import write_video

    root, runs = tmp_path / "data", tmp_path / "run"
    runs.mkdir(parents=True)
    writer = DatasetWriter(root)
    for vid, label, group in (
        ("v1", "benign", "g1"),
        ("v2", "normal", "g1"),
        ("v3", "malignant", "g2"),
    ):
        write_video(root / f"videos/{vid}.avi", [np.zeros((48, 64, 3), np.uint8)] * 4, fps=30)
        lesion = writer.new_lesion_id() if label != "normal" else None
        boxes = [([(4.0, 5.0, 20.0, 25.0)], [lesion]) if lesion else ([], []) for _ in range(4)]
        row = {"video_id": vid, "file": f"videos/{vid}.avi", "pathology": label, "fps": 30.0}
        row["patient_id"] = f"p{vid}"
        if with_groups:
            row["group"] = group
        writer.add_video(row, boxes, 64, 48)

        def entry(box, risk):
            return {
                "risk": risk,
                "evidence": {"detector_score": 0.8, "detector_frames": 4, "lesion_check": 0.7},
                "boxes": [{"frame": f, "box": box} for f in range(4)],
                "clips": [{"probability": risk}, {"probability": None}],
            }

        lesions = [entry([4.0, 5.0, 20.0, 25.0], 0.6), entry([40.0, 30.0, 60.0, 45.0], 0.2)]
        (runs / f"{vid}.json").write_text(json.dumps({"lesions": lesions}))
    writer.write()
    return runs, root


def test_read_run_labels_lesions_by_the_truth_and_keeps_the_groups_asked(tmp_path) -> None:
    from sonorisk.errors import InputError
    from sonorisk.eval.lesion_rules import read_run

    runs, root = _run_on_disk(tmp_path)
    videos = {v.video_id: v for v in read_run(runs, root)}
    assert sorted(videos) == ["v1", "v2", "v3"]
    assert [les.true for les in videos["v1"].lesions] == [True, False]
    assert [les.true for les in videos["v2"].lesions] == [False, False]  # nothing marked
    assert videos["v3"].pathology == "malignant"
    assert videos["v1"].lesions[0].clips == (0.6,)  # a clip with no probability is left out
    assert videos["v1"].lesions[0].evidence == LesionEvidence(0.8, 4, 0.7, None)
    assert [v.video_id for v in read_run(runs, root, groups={"g2"})] == ["v3"]
    assert [v.video_id for v in read_run(runs, root, groups={"g1"})] == ["v1", "v2"]

    runs, root = _run_on_disk(tmp_path / "no_groups", with_groups=False)
    assert len(read_run(runs, root)) == 3
    with pytest.raises(InputError, match="no group column"):
        read_run(runs, root, groups={"g1"})
    document = json.loads((runs / "v1.json").read_text())
    del document["lesions"][0]["evidence"]
    (runs / "v1.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"v1\.json: lesions carry no evidence"):
        read_run(runs, root)
