"""Training (a few steps on tiny models): group folds, candidates, the subtype head on
phantom stills (the only data here with subtypes), evaluation, and the CLI verbs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from sonorisk.errors import InputError
from sonorisk.still_classifier import load_still_classifier
from sonorisk.still_classifier.data import LesionCrop, augmented_crop, busi_crops, phantom_crops
from sonorisk.still_classifier.train import (
    evaluate_still,
    group_folds,
    train_still_classifier,
)

from .conftest import tiny_config  # noqa: TID252


def test_group_folds_keep_groups_together() -> None:
    groups = ["a", "a", "b", "c", "c", "c", "d", "e"]
    folds = group_folds(groups, 3, seed=0)
    for g in set(groups):
        assert len({folds[i] for i, x in enumerate(groups) if x == g}) == 1
    assert set(folds) == {0, 1, 2}


def test_busi_crops_never_mix_heldout_groups(busi_dir: Path) -> None:
    held = [
        line.strip()
        for line in (Path(__file__).parents[2] / "configs/release/heldout_groups.txt")
        .read_text()
        .splitlines()
        if line.strip() and not line.startswith("#")
    ]
    train = busi_crops(busi_dir, held, "train")
    test = busi_crops(busi_dir, held, "heldout")
    assert not {c.group for c in train} & set(held)
    assert {c.group for c in test} <= set(held)
    assert {c.label for c in train} == {0, 1} and {c.label for c in test} == {0, 1}
    assert all(c.box[2] > c.box[0] and c.box[3] > c.box[1] for c in train)


def test_augmentation_keeps_the_lesion_in_view() -> None:
    image = np.zeros((200, 200, 3), np.uint8)
    image[80:120, 80:120] = 255
    rng = np.random.default_rng(0)
    for _ in range(10):
        view = augmented_crop(image, (80, 80, 120, 120), 0.25, 48, rng)
        assert view.shape == (48, 48, 3)
        assert view[20:28, 20:28].mean() > view[:4, :4].mean() + 50  # bright centre


@pytest.fixture(scope="module")
def phantom() -> list[LesionCrop]:
    return phantom_crops(12, seed=0, size=(160, 120))


def test_phantom_crops_carry_subtypes(phantom: list[LesionCrop]) -> None:
    assert len(phantom) == 12
    assert {c.label for c in phantom} == {0, 1}
    assert all(c.subtype for c in phantom)
    assert phantom[0].read().shape == (120, 160, 3)


def test_train_a_subtype_head_on_phantoms(tmp_path: Path, phantom: list[LesionCrop]) -> None:
    names = sorted({c.subtype for c in phantom})
    config = tiny_config(subtypes=names)
    report = train_still_classifier(
        config, phantom, None, tmp_path, {"description": "phantom", "demonstration": True}
    )
    assert report["chosen"] == "whole"  # random trunk: trained end to end
    model = load_still_classifier(tmp_path / "still_classifier.safetensors")
    score = model.predict([model.crop(phantom[0].read(), phantom[0].box)])[0]
    assert set(score.subtypes) == set(names)
    assert model.info["training_data"]["demonstration"] is True
    result = evaluate_still(model, phantom)
    assert 0.0 <= result["auc"] <= 1.0 and result["n"] == 12
    assert len(result["predictions"]) == 12
    accuracy = result["subtype_accuracy"]
    hits = sum(
        max(p["subtypes"], key=p["subtypes"].get) == p["subtype"] for p in result["predictions"]
    )
    assert accuracy["value"] == hits / 12 and accuracy["n"] == 12
    assert accuracy["ci_low"] <= accuracy["value"] <= accuracy["ci_high"]
    assert 0 < accuracy["chance"] <= 1


def test_subtype_head_refuses_data_without_subtypes(
    tmp_path: Path, lite0_detector: Path, phantom: list[LesionCrop]
) -> None:
    from dataclasses import replace

    no_subtypes = [replace(c, subtype=None) for c in phantom]
    with pytest.raises(InputError, match="only on data that has subtypes"):
        train_still_classifier(
            tiny_config(backbone="detector", subtypes=["cyst"]),
            no_subtypes,
            lite0_detector,
            tmp_path,
            {"description": "x"},
        )


def test_cv_chooses_among_candidates_on_a_frozen_trunk(
    tmp_path: Path, lite0_detector: Path, phantom: list[LesionCrop]
) -> None:
    report = train_still_classifier(
        tiny_config(backbone="detector"),
        phantom,
        lite0_detector,
        tmp_path,
        {"description": "phantom"},
    )
    cv = {r["candidate"]: r for r in report["cross_validation"]}
    assert set(cv) == {"head", "head+last_stage"}
    assert all(0.0 <= r["cv_auc"] <= 1.0 and r["n"] == 12 for r in cv.values())
    assert report["chosen"] == max(cv, key=lambda k: cv[k]["cv_auc"])
    for path in report["candidates"].values():
        with safe_open(path, "pt") as fh:
            keys = set(fh.keys())
            header = json.loads(fh.metadata()["sonorisk"])
        assert header["stored_dtype"] == "float16"
        last = any(k.startswith("trunk.") for k in keys)
        assert last == ("last_stage" in path)
    saved = json.loads((tmp_path / "train.json").read_text())
    assert saved["chosen"] == report["chosen"]
    model = load_still_classifier(
        tmp_path / "still_classifier.safetensors", detector=lite0_detector
    )
    assert model.info["stored"] == ("head" if report["chosen"] == "head" else "head+last_stage")


def test_cli_train_and_eval(
    tmp_path: Path,
    busi_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import yaml

    from sonorisk.cli import main
    from sonorisk.config import to_dict

    config = to_dict(tiny_config())
    config["train"]["out_dir"] = str(tmp_path / "run")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert (
        main(
            [
                "train",
                "still-classifier",
                "--phantom",
                "8",
                "--config",
                str(tmp_path / "c.yaml"),
                "--epochs",
                "1",
            ]
        )
        == 0
    )
    path = tmp_path / "run" / "still_classifier.safetensors"
    assert path.is_file()
    capsys.readouterr()
    # Eval on a few BUSI groups with both classes (real stills).
    manifest = (busi_dir / "manifest.csv").read_text().splitlines()
    groups = []
    for label in ("benign", "malignant"):
        groups += [line.split(",")[-2] for line in manifest[1:] if line.split(",")[1] == label][:2]
    (tmp_path / "groups.txt").write_text("\n".join(groups) + "\n")
    assert (
        main(
            [
                "eval",
                "still-classifier",
                "--checkpoint",
                str(path),
                "--data",
                str(busi_dir),
                "--groups",
                str(tmp_path / "groups.txt"),
                "--json",
                str(tmp_path / "e.json"),
            ]
        )
        == 0
    )
    shown = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "e.json").read_text())
    assert shown["auc"] == saved["auc"] and shown["n"] >= 4
    assert {p["group"] for p in saved["predictions"]} <= set(groups)
