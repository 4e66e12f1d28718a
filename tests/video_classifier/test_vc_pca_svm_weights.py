"""Features + PCA + RBF SVM; pretrained weights from files (2D->3D inflation); static patterns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from vc_helpers import blob_clips, clipset, tiny_config

from sonorisk.errors import InputError
from sonorisk.video_classifier.registry import build_classifier, load_classifier
from sonorisk.video_classifier.static2d import default_key_frames, static_video_score
from sonorisk.video_classifier.train import train_on_clips

DATA = {"dataset": "in-memory blob phantom", "synthetic": True}


def test_pca_svm_matches_sklearn_and_round_trips(tmp_path) -> None:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x, y, _ = blob_clips(24, 32, seed=5)
    train, val = clipset(x[:16], y[:16], "t"), clipset(x[16:], y[16:], "v")
    cfg = tiny_config("pca-svm")
    result = train_on_clips(train, val, cfg, tmp_path, DATA, progress=False)
    model = result.model
    fit = result.history[0]["fit"]
    assert fit["pca_components"] == 8 and fit["support_vectors"] > 0
    # The bright disc is easy even for random-init features.
    assert result.history[0]["val"]["auc_clip"] >= 0.8

    # The torch decision function equals sklearn's on the same features.
    feats = model.features_of(train.clips, 8)
    scaler = StandardScaler().fit(feats)
    pca = PCA(n_components=8, random_state=0).fit(scaler.transform(feats))
    z = pca.transform(scaler.transform(feats))
    svc = SVC(C=1.0, kernel="rbf", gamma=fit["gamma"]).fit(z, y[:16])
    vfeats = model.features_of(val.clips, 8)
    ours = model.decision_function(torch.as_tensor(vfeats)).numpy()[:, 0]
    theirs = svc.decision_function(pca.transform(scaler.transform(vfeats)))
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-3)

    # Heatmaps (Grad-CAM through the SVM) and a checkpoint round trip.
    scores = model.predict(x[16:18])
    assert scores[0].heatmap.shape == (8, 32, 32)
    loaded = load_classifier(result.last_checkpoint, kind="pca-svm")
    again = loaded.predict(x[16:18], heatmaps=False)
    assert [s.probability for s in again] == pytest.approx(
        [s.probability for s in scores], abs=1e-5
    )


def test_pca_svm_multiclass_and_errors(tmp_path) -> None:
    classes = ["idc", "fibroadenoma", "mucinous_carcinoma"]
    cfg = tiny_config("pca-svm", classes=classes, malignant=["idc", "mucinous_carcinoma"])
    x, _, _ = blob_clips(12, 32, seed=6)
    labels = np.arange(12) % 3
    result = train_on_clips(
        clipset(x, labels, "t", classes), None, cfg, tmp_path, DATA, progress=False
    )
    s = result.model.predict(x[:1], heatmaps=False)[0]
    assert sum(s.class_probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    unfitted = build_classifier(tiny_config("pca-svm"))
    with pytest.raises(InputError, match="not fitted"):
        unfitted.predict(x[:1])
    with pytest.raises(InputError, match="positive"):
        # fit() takes what predict() takes (clips), as a scikit-learn estimator.
        unfitted.fit(x[:6], np.zeros(6, dtype=int))
    assert unfitted.fit(x, np.arange(12) % 2) is unfitted
    assert unfitted.fit_report_["support_vectors"] > 0


def test_i3d_inflated_from_2d_resnet50(tmp_path) -> None:
    # A clip of identical frames through the inflated stem equals the 2D stem
    # on one frame: that is what inflation (repeat / kt) guarantees.
    resnet = torchvision.models.resnet50(weights=None).eval()
    path = tmp_path / "imagenet_resnet50.pth"
    torch.save(resnet.state_dict(), path)
    cfg = tiny_config("i3d")
    cfg.model.i3d.width = 64  # the real ResNet-50 widths, so the 2D weights fit
    cfg.model.weights = str(path)
    cfg.model.weights_description = "test-made torchvision resnet50 (random, saved by the test)"
    model = build_classifier(cfg).eval()
    assert model.provenance["init"] == "pretrained"
    assert model.provenance["method"] == "2d-resnet inflated to i3d"
    assert model.provenance["tensors_missing"] == 2  # only the new head (fc weight, bias)
    frame = torch.randn(1, 3, 32, 32)
    # 16 frames so the middle one is free of temporal zero-padding effects
    # (the stem's 5-frame kernel and stage 1's three 3-frame kernels reach 5 frames out).
    clip = frame.unsqueeze(2).repeat(1, 1, 16, 1, 1)
    with torch.no_grad():
        want = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(frame))))
        got = model.blocks[0](clip)
        assert torch.allclose(got[:, :, 8], want, atol=1e-4)
        # Deeper too: stage 1 keeps matching (its temporal kernels see equal frames).
        want1 = resnet.layer1(want)
        got1 = model.blocks[1](got)
        assert torch.allclose(got1[:, :, 8], want1, atol=1e-3)
        assert not torch.allclose(got1[:, :, 0], want1, atol=1e-3)  # the edge does differ


def test_i3d_inflated_from_a_sonorisk_static2d_checkpoint(tmp_path) -> None:
    # A static ResNet-50 trained by sonorisk (no ImageNet file at hand) seeds the
    # I3D: its backbone inflates exactly as a torchvision file would.
    from sonorisk.video_classifier.registry import save_checkpoint

    static_cfg = tiny_config("static2d")
    static_cfg.model.static2d.backbone = "resnet50"
    static = build_classifier(static_cfg).eval()
    path = save_checkpoint(tmp_path / "static2d.pt", static, training_data=DATA)
    cfg = tiny_config("i3d")
    cfg.model.i3d.width = 64
    cfg.model.weights = str(path)
    model = build_classifier(cfg).eval()
    assert model.provenance["method"] == "2d-resnet inflated to i3d"
    assert model.provenance["tensors_missing"] == 2  # only the new head
    body = static.backbone.body
    kt = model.blocks[1].res_blocks[0].branch2.conv_a.weight.shape[2]
    got = model.blocks[1].res_blocks[0].branch2.conv_a.weight
    want = body.layer1[0].conv1.weight
    assert torch.allclose(got * kt, want.unsqueeze(2).repeat(1, 1, kt, 1, 1))
    assert torch.equal(model.blocks[0].norm.running_var, body.bn1.running_var)
    # A 2D ResNet-18 checkpoint does not fit an I3D-R50: refused with the reason.
    small = build_classifier(tiny_config("static2d"))  # resnet18
    bad = save_checkpoint(tmp_path / "static2d_r18.pt", small, training_data=DATA)
    cfg.model.weights = str(bad)
    with pytest.raises(InputError, match="do not fit"):
        build_classifier(cfg)


def test_weights_files_errors_and_kinetics_style(tmp_path) -> None:
    cfg = tiny_config("i3d")
    cfg.model.weights = str(tmp_path / "missing.pth")
    with pytest.raises(InputError, match="weights file not found"):
        build_classifier(cfg)
    bad = tmp_path / "bad.pth"
    bad.write_text("nope")
    cfg.model.weights = str(bad)
    with pytest.raises(InputError, match="not a readable torch weights file"):
        build_classifier(cfg)
    # A state dict of another model: refused, not silently half-loaded.
    other = tmp_path / "other.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), other)
    cfg.model.weights = str(other)
    with pytest.raises(InputError, match="do not fit this model"):
        build_classifier(cfg)
    # A pytorchvideo-style 3D state dict (Kinetics checkpoints use these names),
    # wrapped as {"model_state": ...} with DataParallel prefixes.
    source = build_classifier(tiny_config("i3d"))
    wrapped = {
        "model_state": {
            f"module.{k}": v for k, v in source.state_dict().items() if not k.startswith("head.")
        }
    }
    kin = tmp_path / "kinetics_like.pyth"
    torch.save(wrapped, kin)
    cfg = tiny_config("i3d")
    cfg.model.weights = str(kin)
    model = build_classifier(cfg)
    assert model.provenance["method"] == "pytorchvideo i3d state dict"
    k = "blocks.0.conv.weight"
    assert torch.equal(model.state_dict()[k], source.state_dict()[k])


def test_static2d_imagenet_weights_and_patterns(tmp_path) -> None:
    net = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(net.state_dict(), path)
    cfg = tiny_config("static2d")
    cfg.model.weights = str(path)
    model = build_classifier(cfg)
    assert torch.equal(
        model.state_dict()["backbone.body.layer4.1.conv2.weight"],
        net.state_dict()["layer4.1.conv2.weight"],
    )
    crops = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    per_frame = np.array([0.1, 0.2, 0.9, 0.4, 0.5])

    def score(c: np.ndarray) -> np.ndarray:
        return per_frame[[int(np.flatnonzero((crops == f).all(axis=(1, 2, 3)))[0]) for f in c]]

    boxes = [(0, 0, 10, 10), (0, 0, 12, 12), (0, 0, 20, 20), (0, 0, 30, 8), (0, 0, 5, 5)]
    assert default_key_frames(boxes) == (2, 3)  # largest; most different shape
    assert static_video_score(score, crops, "key_frame", boxes) == pytest.approx(0.9)
    assert static_video_score(score, crops, "two_key_frames", boxes) == pytest.approx(0.65)
    assert static_video_score(score, crops, "all_frames") == pytest.approx(0.42)
    assert static_video_score(score, crops, "key_frame", key_frames=[0]) == pytest.approx(0.1)
    with pytest.raises(InputError, match="needs key frames"):
        static_video_score(score, crops, "key_frame")
    with pytest.raises(InputError, match="out of range"):
        static_video_score(score, crops, "two_key_frames", key_frames=[0, 9])


def test_timesformer_weights_from_saved_directory(tmp_path) -> None:
    source = build_classifier(tiny_config("timesformer"))
    source.net.save_pretrained(tmp_path / "tsf")
    # A new model with another head (4 subtypes): the backbone loads, the head does not.
    cfg = tiny_config("timesformer", classes=["a", "b", "c", "d"], malignant=["a"])
    cfg.model.weights = str(tmp_path / "tsf")
    model = build_classifier(cfg)
    assert model.provenance["init"] == "pretrained"
    key = "net.timesformer.embeddings.patch_embeddings.projection.weight"
    assert torch.equal(model.state_dict()[key], source.state_dict()[key])
    assert set(model.provenance["missing_examples"]) == {
        "net.classifier.weight",
        "net.classifier.bias",
    }
    cfg.model.weights = str(tmp_path)  # a directory without a model
    with pytest.raises(InputError, match="not a saved TimeSformer"):
        build_classifier(cfg)


def test_augmentation_moves_all_frames_together() -> None:
    from sonorisk.video_classifier.augment import augment_clips
    from sonorisk.video_classifier.config import AugmentConfig

    frame = torch.rand(2, 3, 1, 24, 24)
    clip = frame.repeat(1, 1, 8, 1, 1)
    cfg = AugmentConfig(blur_prob=1.0)
    out = augment_clips(clip, cfg, torch.Generator().manual_seed(0))
    assert out.shape == clip.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, clip)  # it did change the clip
    # ... but identically for every frame: no invented motion.
    assert torch.allclose(out, out[:, :, :1].expand_as(out), atol=1e-6)


def test_resampling_augmentation_blurs_like_a_smaller_video_and_is_validated() -> None:
    from sonorisk.config import load_config
    from sonorisk.errors import ConfigError
    from sonorisk.video_classifier.augment import augment_clips
    from sonorisk.video_classifier.config import AugmentConfig, ClassifierConfig

    # Speckle-like texture: one value per pixel, so fine grain is all high frequency.
    frame = torch.rand(4, 3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    clip = frame.repeat(1, 1, 8, 1, 1)
    only = dict(hflip=False, rotate_deg=0.0, scale_min=1.0, brightness=0.0, contrast=0.0)
    off = augment_clips(clip, AugmentConfig(**only, blur_prob=0.0), torch.Generator())
    assert torch.allclose(off, clip, atol=1e-5)  # the other transforms at identity

    def grain(x: torch.Tensor) -> float:  # mean absolute difference of neighbours
        return float((x[..., 1:] - x[..., :-1]).abs().mean())

    cfg = AugmentConfig(**only, blur_prob=0.0, resample_prob=1.0, resample_min=0.5)
    out = augment_clips(clip, cfg, torch.Generator().manual_seed(0))
    assert out.shape == clip.shape and out.min() >= 0 and out.max() <= 1
    assert grain(out) < 0.8 * grain(clip)  # finer grain than the small size holds is gone
    assert torch.allclose(out, out[:, :, :1].expand_as(out), atol=1e-6)  # all frames alike
    # The mean brightness is kept: it is a change of resolution, not of exposure.
    assert torch.allclose(out.mean(dim=(2, 3, 4)), clip.mean(dim=(2, 3, 4)), atol=0.02)
    for bad in ({"resample_prob": 1.5}, {"resample_min": 0.0}, {"blur_prob": -0.1}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            load_config(
                ClassifierConfig, overrides={f"train.augment.{k}": v for k, v in bad.items()}
            )


def test_2d_weights_of_another_backbone_refused(tmp_path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    cfg = tiny_config("pca-svm")  # mobilenet_v2 backbone
    cfg.model.weights = str(path)
    with pytest.raises(InputError, match="no tensor in this file matches"):
        build_classifier(cfg)
    cfg = tiny_config("static2d")
    cfg.model.static2d.backbone = "resnet50"  # resnet18 names, other shapes
    cfg.model.weights = str(path)
    with pytest.raises(InputError, match="another backbone"):
        build_classifier(cfg)


def test_static2d_frame_scorer_feeds_the_patterns() -> None:
    model = build_classifier(tiny_config("static2d"))
    clip = np.random.default_rng(1).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    per_frame = model.predict_frames(clip)
    assert per_frame.shape == (8,) and ((per_frame >= 0) & (per_frame <= 1)).all()
    # A frame scored alone equals that frame as a one-frame batch entry.
    assert model.predict_frames(clip[3:4])[0] == pytest.approx(per_frame[3], abs=1e-5)
    video = static_video_score(model.predict_frames, clip, "all_frames")
    assert video == pytest.approx(per_frame.mean(), abs=1e-6)
    with pytest.raises(InputError, match="expected uint8 crops"):
        model.predict_frames(clip.astype(np.float32))
