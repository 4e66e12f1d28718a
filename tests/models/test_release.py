"""The default release's own description (sonorisk.models.release) exports and says
what the bundle is: trained on BUSI, the held-out groups, the recipe, the notice."""

from __future__ import annotations

import json
from pathlib import Path

from sonorisk.data.splits import read_id_lines
from sonorisk.models.bundle import read_bundle, verify_bundle
from sonorisk.models.release import NOTICE, main

REPO = Path(__file__).parents[2]
HELD = REPO / "configs/release/heldout_groups.txt"


def test_release_bundle_says_what_it_is(tmp_path, checkpoints):
    figures = {
        "detector_ap50_stills": {
            "value": 0.8,
            "ci_low": 0.7,
            "ci_high": 0.9,
            "n": 108,
            "method": "COCO AP50; bootstrap",
            "note": "plain",
        }
    }
    (tmp_path / "m.json").write_text(json.dumps(figures))
    assert (
        main(
            [
                "--detector",
                str(checkpoints.detector),
                "--classifier",
                str(checkpoints.classifier),
                "--out",
                str(tmp_path / "b"),
                "--version",
                "9.9.9",
                "--heldout-groups",
                str(HELD),
                "--metrics",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    folder = tmp_path / "b" / "sonorisk-busi" / "9.9.9"
    assert verify_bundle(folder).ok
    bundle = read_bundle(folder)
    meta = json.loads((folder / "metadata.json").read_text())
    assert bundle.notice == NOTICE
    # Honest both ways: not a toy, not clinical.
    assert "demonstration" not in NOTICE.lower() and "not a medical device" in NOTICE
    assert meta["heldout_groups"]["groups"] == read_id_lines(HELD)
    assert meta["heldout_groups"]["n_groups"] == 96
    assert meta["training"]["configs"]["detector"]["model"]["backbone"] == "efficientnet_lite0"
    assert meta["training"]["configs"]["classifier"]["model"]["kind"] == "lite3d"
    assert meta["training_data"]["licence"] == "CC0 1.0"
    assert "Data in Brief" in meta["training_data"]["citation"]
    assert meta["metrics"] == figures
    card = (folder / "README.md").read_text()
    assert NOTICE in card and "0.8" in card and "CC0" in card
    # The lesion rules the figures were measured with travel with the bundle.
    assert meta["pipeline"]["lesions"]["risk_rule"] == "most_confident_lesion"
    assert "## Lesion rules" in card and "min_confidence" in card
    # What moves the figures is said where a user reads about the models.
    (encoding,) = [x for x in meta["limitations"] if "encoded" in x]
    assert "quantiser" in encoding and encoding in card


def test_the_shipped_bundle_was_measured_with_todays_default_lesion_rules():
    """Figures in the bundled card hold only for the rules it was measured with:
    a change of the defaults must come with a new release (scripts/e2e_release.sh)."""
    from sonorisk.config import to_dict
    from sonorisk.models.load import load_classifier_file
    from sonorisk.pipeline.lesions import LesionRules

    # The package's own folder (the fixtures point the store elsewhere).
    folders = sorted(p.parent for p in (REPO / "sonorisk/bundled").glob("*/*/metadata.json"))
    assert folders, "no bundled model"
    for folder in folders:
        meta = json.loads((folder / "metadata.json").read_text())
        assert meta["pipeline"]["lesions"] == to_dict(LesionRules()), folder
        # ... and the classifier it ships carries the lesion check those rules use.
        classifier = load_classifier_file(folder / meta["models"]["classifier"]["file"])
        assert classifier.lesion_head is not None, folder
