"""A bundle with a still classifier for tests (random still weights: its numbers mean
nothing; the tests check that stills go through end to end)."""

from __future__ import annotations

from pathlib import Path


def random_still_bundle(
    detector: Path,
    classifier: Path,
    work: Path,
    *,
    name: str = "test",
    dtype: str | None = None,
    notice: str = "TEST bundle: not a clinical result",
) -> Path:
    """``work/bundles/NAME/1.0.0``: ``detector`` and ``classifier`` (kept in their dtype
    unless ``dtype``) and an untrained 64-pixel still classifier."""
    from sonorisk.models.bundle import export_bundle
    from sonorisk.still_classifier import StillClassifierConfig, build_still_classifier

    config = StillClassifierConfig()
    config.model.backbone = "random"
    config.crop.size = 64
    still = build_still_classifier(config).save(
        work / "still_classifier.safetensors",
        training_data={"description": "untrained (tests)", "demonstration": True},
    )
    info = {
        "task": "tests: breast lesion detection and scoring in video and stills",
        "intended_use": "tests only",
        "limitations": ["random still-classifier weights"],
        "training_data": {
            "description": "the test models' own; none for the still classifier",
            "licence": "CC0 1.0",
            "citation": "none",
        },
        "notice": notice,
    }
    return export_bundle(
        detector,
        classifier,
        work / "bundles",
        name,
        "1.0.0",
        info,
        dtype=dtype,
        still_classifier=still,
    )
