"""The default release's own description (sonorisk.models.release) exports and says
what the bundle is: trained on BUSI, the held-out groups, the recipe, the notice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


def test_a_release_with_detector_tta_runs_it_unless_told_otherwise(tmp_path, checkpoints):
    """`--detector-tta`: the bundle records the setting its figures were measured
    with (pipeline.detector), its card says so, every run with it loads the
    detector with flip TTA, and a run's own flag still wins."""
    from sonorisk.errors import InputError
    from sonorisk.models.load import load_models
    from sonorisk.models.resolve import resolve_models
    from sonorisk.pipeline.config import ModelsConfig

    args = ["--detector", str(checkpoints.detector), "--classifier", str(checkpoints.classifier)]
    args += ["--out", str(tmp_path / "b"), "--heldout-groups", str(HELD)]
    assert main([*args, "--version", "9.9.9", "--detector-tta"]) == 0
    assert main([*args, "--version", "9.9.8"]) == 0
    folder = tmp_path / "b" / "sonorisk-busi" / "9.9.9"
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["pipeline"]["detector"] == {"tta_hflip": True}
    assert "## Detector settings" in (folder / "README.md").read_text()
    plain = tmp_path / "b" / "sonorisk-busi" / "9.9.8"
    assert "detector" not in json.loads((plain / "metadata.json").read_text())["pipeline"]
    assert "## Detector settings" not in (plain / "README.md").read_text()

    def tta(bundle: Path, **flags) -> bool:
        models = load_models(
            resolve_models(str(bundle)),
            detector_overrides=ModelsConfig(**flags).detector_overrides(),
        )
        on = models.detector.config.inference.tta_hflip
        assert ("test_time_augmentation" in models.cards["detector"]) == on
        return on

    assert tta(folder) and not tta(folder, detector_tta=False)
    assert not tta(plain) and tta(plain, detector_tta=True)
    # A setting no bundle may fix is refused, naming the file and the key.
    meta["pipeline"]["detector"] = {"tta_hflip": "yes"}
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"metadata\.json.*pipeline\.detector\.tta_hflip"):
        load_models(resolve_models(str(folder)))
