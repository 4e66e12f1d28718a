"""Fixtures for the bundle tests: the tiny models other tests already make, as
checkpoints and bundles; model directories isolated from the user's.

The detector is the two-iteration BUSI run of tests/detector (``trained_dir``);
the classifier is tests/pipeline's tiny random-init I3D (``tiny_i3d``), saved
as a checkpoint. Weights are junk; what is tested is that they travel intact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..detector.conftest import trained_dir  # noqa: F401, TID252 (shared session fixture)
from ..pipeline.conftest import tiny_i3d  # noqa: F401, TID252
from ..still_classifier.conftest import lite0_detector  # noqa: F401, TID252

NOTICE = (
    "Research model trained on BUSI stills turned into synthetic sweeps; not validated "
    "on real video or patients; not a medical device."
)


def bundle_info(**changes) -> dict:
    info = {
        "task": "lesion detection and clip malignancy scoring in breast ultrasound video",
        "intended_use": "research on video-based breast lesion risk; not clinical use",
        "limitations": ["trained on one hospital's stills", "not validated on patients"],
        "training_data": {
            "description": "BUSI (Al-Dhabyani et al. 2020), test subset",
            "licence": "CC0 1.0",
            "citation": "Data in Brief 28:104863 (2020)",
        },
        "training": {"command": "bash scripts/release.sh", "config": {"detector.yaml": "a: 1"}},
        "heldout_groups": ["g1", "g2"],
        "metrics": {
            "detector_ap50": {
                "value": 0.8123,
                "ci_low": 0.75,
                "ci_high": 0.86,
                "n": 120,
                "method": "bootstrap over images",
                "note": "plain, no TTA",
            }
        },
        "notice": NOTICE,
    }
    info.update(changes)
    return info


@dataclass(frozen=True)
class Checkpoints:
    detector: Path
    classifier: Path


@pytest.fixture(scope="session")
def checkpoints(
    tmp_path_factory: pytest.TempPathFactory,
    trained_dir: Path,  # noqa: F811
    tiny_i3d,  # noqa: F811
) -> Checkpoints:
    from sonorisk.video_classifier.registry import save_checkpoint

    out = tmp_path_factory.mktemp("ckpt")
    classifier = save_checkpoint(
        out / "classifier.pt",
        tiny_i3d,
        training_data={"description": "none (random init, test)", "synthetic": True},
    )
    return Checkpoints(trained_dir / "last.pt", classifier)


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, checkpoints: Checkpoints) -> Path:
    """A pristine bundle (copy it before changing anything)."""
    from sonorisk.models.bundle import export_bundle

    root = tmp_path_factory.mktemp("exported")
    return export_bundle(
        checkpoints.detector, checkpoints.classifier, root, "tiny", "1.0.0", bundle_info()
    )


@pytest.fixture(autouse=True)
def isolated_model_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty user model directory and an empty bundled directory per test."""
    import torch

    from sonorisk.models import store

    torch.set_num_threads(1)
    user = tmp_path / "user-models"
    bundled = tmp_path / "bundled"
    monkeypatch.setenv(store.ENV_MODELS, str(user))
    monkeypatch.delenv(store.ENV_DEFAULT, raising=False)
    monkeypatch.setattr(store, "BUNDLED_DIR", bundled)
    yield user


def copy_bundle(
    bundle: Path, root: Path, name: str | None = None, version: str | None = None
) -> Path:
    """``bundle`` copied to ``root/<name>/<version>`` (same metadata unless renamed)."""
    import json
    import shutil

    from sonorisk.models.bundle import METADATA

    meta = json.loads((bundle / METADATA).read_text())
    name = name or meta["name"]
    version = version or meta["version"]
    target = root / name / version
    shutil.copytree(bundle, target)
    if (name, version) != (meta["name"], meta["version"]):
        meta.update(name=name, version=version)
        (target / METADATA).write_text(json.dumps(meta, indent=2))
    return target
