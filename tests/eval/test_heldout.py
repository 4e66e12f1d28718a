"""Release figures from the evaluation commands' outputs (sonorisk.eval.heldout)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from sonorisk.errors import InputError
from sonorisk.eval.heldout import classifier_figures, detector_figures, end_to_end_figures, main


def _videos(path, ids, labels):
    pd.DataFrame({"video_id": ids, "pathology": labels}).to_csv(path, index=False)
    return path


def test_end_to_end_auc_counts_only_videos_given_a_risk(tmp_path):
    ids = [f"v{i}" for i in range(8)]
    labels = ["benign", "malignant"] * 4
    sweeps = _videos(tmp_path / "videos.csv", ids, labels)
    free = _videos(tmp_path / "free.csv", ["n0", "n1", "n2"], ["normal"] * 3)
    risks = [0.1, 0.9, 0.4, 0.3, 0.2, 0.8, None, 0.7]  # v6 (benign): no scorable lesion
    rows = [{"video": f"{v}.avi", "risk": r} for v, r in zip(ids, risks, strict=True)]
    rows += [
        {"video": "n0.avi", "risk": 0.5},
        {"video": "n1.avi", "risk": None},
        {"video": "n2.avi", "risk": None},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "batch.csv", index=False)
    figs = end_to_end_figures(tmp_path / "batch.csv", sweeps, free)
    kept = [(lab == "malignant", r) for lab, r in zip(labels, risks, strict=True) if r is not None]
    want = roc_auc_score([k for k, _ in kept], [r for _, r in kept])
    auc = figs["end_to_end_auc"]
    assert auc["value"] == pytest.approx(want, abs=1e-4) and auc["n"] == 7
    assert auc["ci_low"] < auc["value"] <= auc["ci_high"] and "DeLong" in auc["method"]
    assert figs["end_to_end_lesion_videos_scored"]["value"] == pytest.approx(7 / 8, abs=1e-4)
    assert figs["end_to_end_lesion_free_given_risk"]["value"] == pytest.approx(1 / 3, abs=1e-4)
    with pytest.raises(InputError, match="no row"):
        end_to_end_figures(tmp_path / "batch.csv", _videos(tmp_path / "o.csv", ["x"], ["benign"]))


def test_classifier_and_detector_figures_and_cli(tmp_path):
    sweeps = _videos(
        tmp_path / "videos.csv",
        ["a", "b", "c", "d"],
        ["benign", "malignant", "benign", "malignant"],
    )
    pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "model": "m",
            "truth": [0, 1, 0, 1],
            "score": [0.2, 0.7, 0.6, 0.9],
        }
    ).to_csv(tmp_path / "scores.csv", index=False)
    fig = classifier_figures(tmp_path / "scores.csv", sweeps)["classifier_auc_gt_boxes"]
    assert fig["value"] == pytest.approx(roc_auc_score([0, 1, 0, 1], [0.2, 0.7, 0.6, 0.9]))
    evaluation = {
        "n_images": 10,
        "n_lesion_boxes": 8,
        "ap50": 0.8,
        "ap": 0.5,
        "ap50_ci": [0.6, 0.95],
        "ap_ci": [0.3, 0.6],
        "bootstrap_resamples": 100,
        "still_detection_rate": 0.75,
        "score_thresh": 0.3,
        "lesion_free_stills": 2,
    }
    det = detector_figures(evaluation)
    assert det["detector_ap50_stills"] == {
        "value": 0.8,
        "ci_low": 0.6,
        "ci_high": 0.95,
        "n": 10,
        "method": "COCO AP50; percentile bootstrap over images, 100 resamples",
        "note": "10 held-out BUSI stills (8 lesion boxes), no test-time augmentation",
    }
    # Measured with flip TTA (the detector's card says so): the figures say it too.
    flipped = {**evaluation, "detector": {"test_time_augmentation": "horizontal flip"}}
    assert detector_figures(flipped)["detector_ap50_stills"]["note"].endswith(
        "(8 lesion boxes), test-time augmentation: horizontal flip"
    )
    rate = det["detector_detection_rate_stills"]  # 6 of the 8 lesion stills
    assert rate["value"] == 0.75 and rate["n"] == 8 and rate["ci_low"] < 0.75 < rate["ci_high"]
    (tmp_path / "det.json").write_text(json.dumps(evaluation))
    assert (
        main(
            [
                "--detector-eval",
                str(tmp_path / "det.json"),
                "--classifier-scores",
                str(tmp_path / "scores.csv"),
                "--sweeps",
                str(sweeps),
                "--out",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    written = json.loads((tmp_path / "m.json").read_text())
    assert set(written) == {
        "detector_ap50_stills",
        "detector_ap_stills",
        "detector_detection_rate_stills",
        "classifier_auc_gt_boxes",
    }


def test_out_of_scope_videos_given_a_risk(tmp_path):
    from sonorisk.eval.heldout import out_of_scope_figures

    pd.DataFrame(
        {
            "video": ["a.mp4", "b.mp4", "c.mov", "d.avi"],
            "status": ["scored", "no scorable lesion", "scored", "failed"],
            "risk": [0.7, None, 0.2, None],
        }
    ).to_csv(tmp_path / "oos.csv", index=False)
    fig = out_of_scope_figures(tmp_path / "oos.csv", "lung clips")["out_of_scope_given_risk"]
    assert fig["value"] == pytest.approx(2 / 3, abs=1e-4) and fig["n"] == 3  # failed: not counted
    assert fig["ci_low"] < fig["value"] < fig["ci_high"] and "lung clips" in fig["note"]
    pd.DataFrame({"video": ["x"], "status": ["failed"], "risk": [None]}).to_csv(
        tmp_path / "bad.csv", index=False
    )
    with pytest.raises(InputError, match="no scored row"):
        out_of_scope_figures(tmp_path / "bad.csv", "lung clips")


def test_exactly_one_lesion_and_false_lesions_per_lesion_free_video(tmp_path):
    sweeps = _videos(
        tmp_path / "videos.csv",
        ["a", "b", "c", "d"],
        ["benign", "malignant", "benign", "malignant"],
    )
    free = _videos(tmp_path / "free.csv", ["n0", "n1"], ["normal"] * 2)
    rows = [
        {"video": "a.avi", "risk": 0.1, "scored_lesions": 1},
        {"video": "b.avi", "risk": 0.9, "scored_lesions": 2},
        {"video": "c.avi", "risk": 0.3, "scored_lesions": 1},
        {"video": "d.avi", "risk": None, "scored_lesions": 0},
        {"video": "n0.avi", "risk": 0.5, "scored_lesions": 3},
        {"video": "n1.avi", "risk": None, "scored_lesions": 0},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "screen.csv", index=False)
    figs = end_to_end_figures(
        tmp_path / "screen.csv", sweeps, free, prefix="screen_", what="screen captures"
    )
    one = figs["screen_end_to_end_exactly_one_lesion"]
    assert one["value"] == pytest.approx(0.5) and one["n"] == 4
    per = figs["screen_end_to_end_lesion_free_scored_lesions_per_video"]
    assert per["value"] == pytest.approx(1.5) and per["n"] == 2 and "3 in 2" in per["note"]
    assert "screen captures" in figs["screen_end_to_end_auc"]["note"]
    assert not any(name.startswith("end_to_end") for name in figs)


def test_still_figures_from_a_batch_over_stills(tmp_path):
    """Still AUC on the stills given a risk; AP50 and detection rate from the
    boxes the documents report (detector boxes only), against manifest boxes."""
    from sonorisk.eval.heldout import still_figures

    manifest = pd.DataFrame(
        {
            "id": ["b1", "b2", "m1", "m2", "n1"],
            "label": ["benign", "benign", "malignant", "malignant", "normal"],
            "width": [100] * 5,
            "height": [80] * 5,
            "boxes": ["10 10 40 40", "20 20 50 50", "30 30 60 60;5 5 15 15", "10 10 30 30", ""],
        }
    )
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    found = {  # id -> (risk, [(box, score)])
        "b1": (0.2, [((10, 10, 40, 40), 0.9)]),
        "b2": (None, []),  # missed: no risk
        "m1": (0.7, [((30, 30, 60, 60), 0.8)]),  # one of two lesions found
        "m2": (0.1, [((60, 50, 90, 70), 0.6)]),  # a false box, scored low
        "n1": (0.4, [((0, 0, 20, 20), 0.5)]),  # a false lesion on a normal still
    }
    docs = tmp_path / "batch.json"
    docs.mkdir()
    rows = []
    for sid, (risk, boxes) in found.items():
        lesions = [
            {"boxes": [{"frame": 0, "box": list(b), "score": s, "source": "detector"}]}
            for b, s in boxes
        ]
        (docs / f"{sid}.json").write_text(json.dumps({"lesions": lesions}))
        rows.append(
            {
                "video": f"{sid}.png",
                "status": "scored" if risk is not None else "no scorable lesion",
                "risk": risk,
                "json": f"{sid}.json",
                "error": None,
            }
        )
    pd.DataFrame(rows).to_csv(tmp_path / "batch.csv", index=False)
    figs = still_figures(tmp_path / "batch.csv", tmp_path / "manifest.csv")
    # b1 0.2 (benign), m1 0.7, m2 0.1 (malignant): pairs (m1>b1) yes, (m2>b1) no -> 0.5
    assert figs["still_auc"]["value"] == pytest.approx(0.5) and figs["still_auc"]["n"] == 3
    assert figs["still_lesion_stills_scored"]["value"] == pytest.approx(3 / 4, abs=1e-4)
    assert figs["still_lesion_free_given_risk"]["value"] == pytest.approx(1.0)
    # lesion stills with a matching box: b1, m1 of b1, b2, m1, m2
    assert figs["still_detection_rate"]["value"] == pytest.approx(2 / 4)
    assert figs["still_detection_rate"]["n"] == 4 and figs["still_detector_ap50"]["n"] == 5
    # ranked 0.9 TP, 0.8 TP, then false boxes: precision 1 up to recall 2/5, so COCO's
    # 101-point AP50 is 41/101
    assert figs["still_detector_ap50"]["value"] == pytest.approx(41 / 101, abs=1e-4)
    # a failed still is refused, not silently left out
    pd.DataFrame(
        rows
        + [
            {
                "video": "b3.png",
                "status": "failed",
                "risk": None,
                "json": None,
                "error": "corrupt PNG",
            }
        ]
    ).to_csv(tmp_path / "bad.csv", index=False)
    manifest.loc[len(manifest)] = ["b3", "benign", 100, 80, "1 1 9 9"]
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(InputError, match="1 stills failed.*corrupt PNG"):
        still_figures(tmp_path / "bad.csv", tmp_path / "manifest.csv")
