"""Training, checkpoints, resume, load_classifier, and a CAM that finds the lesion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vc_helpers import blob_clips, clipset, tiny_config

from sonorisk.errors import InputError
from sonorisk.video_classifier.registry import (
    build_classifier,
    load_classifier,
    model_card,
    read_checkpoint,
    save_checkpoint,
)
from sonorisk.video_classifier.train import clip_metrics, train_on_clips

DATA = {"dataset": "in-memory blob phantom", "synthetic": True, "tiny": True}


@pytest.mark.parametrize(("kind", "epochs"), [("i3d", 3), ("timesformer", 4)])
def test_heatmap_finds_the_bright_lesion(tmp_path, kind: str, epochs: int) -> None:
    # Malignant clips hold a bright disc at a random place; after a short
    # training the malignant evidence (heatmap > 0.5) must sit on the disc.
    # For TimeSformer this also pins the token order (patch-major) used to
    # fold its token saliency back into T x h x w.
    size = 32
    x, y, _ = blob_clips(32, size, seed=1)
    xv, yv, centres = blob_clips(8, size, seed=2)
    cfg = tiny_config(kind, size=size)
    if kind == "timesformer":
        cfg.model.timesformer.hidden_size = 32
        cfg.model.timesformer.num_hidden_layers = 2
        cfg.model.timesformer.intermediate_size = 64
    cfg.train.epochs = epochs
    cfg.train.batch_size = 8
    result = train_on_clips(
        clipset(x, y, "t"), clipset(xv, yv, "v"), cfg, tmp_path, DATA, progress=False
    )
    assert result.history[-1]["val"]["auc_clip"] >= 0.9
    yy, xx = np.mgrid[:size, :size]
    fractions = []
    for score, label, (cy, cx) in zip(result.model.predict(xv), yv, centres, strict=True):
        if not label:
            continue
        evidence = np.clip(score.heatmap.mean(axis=0) - 0.5, 0, None)
        near = (yy - cy) ** 2 + (xx - cx) ** 2 <= (size / 4) ** 2  # ~20% of the crop
        fractions.append(evidence[near].sum() / evidence.sum())
    # Uniform evidence would put ~20% of the mass there.
    assert np.median(fractions) > 0.5, fractions


def test_checkpoint_round_trip_resume_and_kind_check(tmp_path) -> None:
    x, y, _ = blob_clips(8, 16, seed=3)
    train, val = clipset(x[:6], y[:6], "t"), clipset(x[6:], y[6:], "v")
    cfg = tiny_config("i3d", size=16)
    cfg.model.i3d.dropout = 0.3  # dropout draws must be reproduced on resume too
    cfg.train.epochs = 1
    cfg.train.batch_size = 6
    first = train_on_clips(train, val, cfg, tmp_path / "a", DATA, progress=False)
    payload = read_checkpoint(first.last_checkpoint)
    assert payload["kind"] == "i3d" and payload["epoch"] == 1
    assert payload["class_names"] == ["benign", "malignant"]
    assert payload["training_data"]["synthetic"] is True
    assert payload["weights_provenance"]["init"] == "random"
    assert payload["config"]["model"]["i3d"]["width"] == 4
    assert "auc_clip" in payload["metrics"] and len(payload["history"]) == 1

    loaded = load_classifier(first.last_checkpoint, kind="i3d")
    a = first.model.predict(x[:2], heatmaps=False)
    b = loaded.predict(x[:2], heatmaps=False)
    assert [s.probability for s in a] == pytest.approx([s.probability for s in b], abs=1e-6)
    card = model_card(loaded)
    assert card["trained_on_synthetic_data"] is True and card["research_only"] is True

    with pytest.raises(InputError, match="holds a 'i3d' classifier, expected 'timesformer'"):
        load_classifier(first.last_checkpoint, kind="timesformer")

    # Resume to epoch 2: history continues, optimizer state restored, weights move on.
    cfg2 = tiny_config("i3d", size=16)
    cfg2.model.i3d.dropout = 0.3
    cfg2.train.epochs = 2
    cfg2.train.batch_size = 6
    resumed = train_on_clips(
        train, val, cfg2, tmp_path / "a", DATA, resume=first.last_checkpoint, progress=False
    )
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert read_checkpoint(resumed.last_checkpoint)["epoch"] == 2
    # An uninterrupted 2-epoch run ends with the same weights (seeded per epoch).
    straight = train_on_clips(train, val, cfg2, tmp_path / "b", DATA, progress=False)
    w1 = resumed.model.state_dict()["head.fc.weight"]
    w2 = straight.model.state_dict()["head.fc.weight"]
    assert torch.allclose(w1, w2, atol=1e-5)

    wrong = tiny_config("static2d", size=16)
    with pytest.raises(InputError, match="cannot resume"):
        train_on_clips(
            train, val, wrong, tmp_path / "c", DATA, resume=first.last_checkpoint, progress=False
        )


def test_load_refuses_other_files(tmp_path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_classifier(junk)
    other = tmp_path / "detector.pt"
    torch.save({"format": "sonorisk-detector", "model_state": {}}, other)
    with pytest.raises(InputError, match="not a sonorisk video-classifier checkpoint"):
        load_classifier(other)
    with pytest.raises(InputError, match="checkpoint not found"):
        load_classifier(tmp_path / "missing.pt")
    # A checkpoint whose weights do not fit its config.
    model = build_classifier(tiny_config("i3d"))
    path = save_checkpoint(tmp_path / "ok.pt", model, training_data=DATA)
    payload = torch.load(path, weights_only=True)
    payload["config"]["model"]["i3d"]["width"] = 8
    torch.save(payload, path)
    with pytest.raises(InputError, match="do not match its config"):
        load_classifier(path)


def test_subtype_head_trains_and_reports_malignant_sum(tmp_path) -> None:
    classes = ["idc", "fibroadenoma", "mucinous_carcinoma", "inflammatory_mass"]
    cfg = tiny_config("timesformer", classes=classes, malignant=["idc", "mucinous_carcinoma"])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (8, 8, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(8) % 4
    cs = clipset(x, labels, "t", classes)
    result = train_on_clips(cs, cs, cfg, tmp_path, DATA, progress=False)
    val = result.history[-1]["val"]
    assert val["clips"] == 8 and val["auc_clip"] is not None
    loaded = load_classifier(result.best_checkpoint, kind="timesformer")
    s = loaded.predict(x[:1])[0]
    assert s.probability == pytest.approx(
        s.class_probabilities["idc"] + s.class_probabilities["mucinous_carcinoma"], abs=1e-5
    )


def test_class_balance_sampler_and_label_mismatch(tmp_path) -> None:
    x, y, _ = blob_clips(6, 32, seed=4)
    cfg = tiny_config("i3d")
    cfg.train.class_balance = "sampler"
    result = train_on_clips(clipset(x, y, "t"), None, cfg, tmp_path, DATA, progress=False)
    assert result.history[0]["train_clips_seen"] == 6
    bad = clipset(x, y, "t", classes=["a", "b"])
    from sonorisk.errors import ConfigError

    with pytest.raises(ConfigError, match="labelled"):
        train_on_clips(bad, None, cfg, tmp_path, DATA, progress=False)


def test_clip_metrics_video_level() -> None:
    p = np.array([0.9, 0.5, 0.2, 0.4, 0.6])
    y = np.array([1, 1, 0, 0, 0])
    m = clip_metrics(p, y, ["a", "a", "b", "b", "c"])
    assert m["auc_clip"] == pytest.approx(5 / 6)
    assert m["videos"] == 3 and m["auc_video"] == pytest.approx(1.0)
    assert m["accuracy_clip"] == pytest.approx(0.8)
    one_class = clip_metrics(p[:2], y[:2], ["a", "b"])
    assert one_class["auc_clip"] is None and one_class["auc_video"] is None
