"""Fixtures for the serving tests: real models, phantom sweeps, a running service.

Models: the serving tests need a detector that finds the phantom lesions, so
boxes and a lesion risk arrive. A Faster R-CNN trained from scratch does not
learn that in a minute on a 2-core CPU (measured: 100-150 iterations at 96-128
px find nothing), so the fixture trains the ``sonorisk demo`` recipe once
(a few minutes) and caches the pair in ``$SONORISK_TEST_CACHE`` (default
``~/.cache/sonorisk-tests``), keyed by the recipe. ``SONORISK_TEST_MODELS=DIR``
(a folder with detector.pt and classifier.pt, e.g. ``sonorisk-demo/models``)
skips the training. Either way the detector is checked once: it must find a
scorable lesion in a phantom sweep it was not trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

RECIPE_VERSION = 1


@dataclass(frozen=True)
class Models:
    detector: Path
    classifier: Path

    @property
    def folder(self) -> Path:
        return self.detector.parent


def _cache_root() -> Path:
    return Path(os.environ.get("SONORISK_TEST_CACHE",
                               Path.home() / ".cache" / "sonorisk-tests")).expanduser()


def _verify(models: Models, video: Path, out: Path) -> dict:
    from sonorisk.pipeline.config import PipelineConfig
    from sonorisk.pipeline.score_file import load_models, score_file

    loaded = load_models(models.detector, models.classifier)
    return score_file(video, loaded, PipelineConfig(), out, progress=False)


@pytest.fixture(scope="session")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three phantom sweeps (benign, malignant, normal), 80 frames of 256x192 at 30 fps."""
    from sonorisk.data.synth import synthesize_phantom

    out = synthesize_phantom(3, tmp_path_factory.mktemp("sweeps") / "set", seed=1000,
                             frames=80, size=(256, 192),
                             proportions={"benign": 1, "malignant": 1, "normal": 1})
    videos = sorted((out / "videos").glob("*.avi"))
    return {p.stem.rsplit("_", 1)[-1]: p for p in videos}


@pytest.fixture(scope="session")
def serving_models(tmp_path_factory: pytest.TempPathFactory, sweeps: dict[str, Path]) -> Models:
    import torch

    torch.set_num_threads(1)
    given = os.environ.get("SONORISK_TEST_MODELS")
    if given:
        models = Models(Path(given) / "detector.pt", Path(given) / "classifier.pt")
    else:
        from sonorisk.pipeline.demo import DemoSettings

        settings = DemoSettings(threads=1)
        key = hashlib.sha256(json.dumps([RECIPE_VERSION, asdict(settings)],
                                        sort_keys=True).encode()).hexdigest()[:12]
        folder = _cache_root() / f"serving-models-{key}"
        models = Models(folder / "detector.pt", folder / "classifier.pt")
        if not (folder / "verified.json").is_file():
            _train(folder, settings)
    marker = models.folder / "verified.json"
    if not marker.is_file():
        document = _verify(models, sweeps["malignant"], tmp_path_factory.mktemp("verify"))
        assert document["status"] == "scored" and document["lesions"], (
            f"the test detector {models.detector} finds no scorable lesion in a phantom sweep; "
            "delete it to retrain")
        if not given:
            marker.write_text(json.dumps({"risk": document["risk"], "at": time.time()}))
    return models


def _train(folder: Path, settings) -> None:
    import shutil

    from sonorisk.data.synth import synthesize_phantom
    from sonorisk.pipeline.demo import train_demo_models

    work = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    train = synthesize_phantom(settings.train_videos, work / "train", seed=0,
                               frames=settings.frames, size=settings.size)
    detector, classifier = train_demo_models(train, work / "models", settings, progress=False)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(detector, folder / "detector.pt")
    shutil.copy(classifier, folder / "classifier.pt")
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def torch_one_thread() -> Iterator[None]:
    import torch

    torch.set_num_threads(1)
    yield
