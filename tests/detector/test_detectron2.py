from __future__ import annotations

from pathlib import Path

import pytest

from sonorisk.detector.config import DetectorConfig
from sonorisk.detector.detectron2_backend import detectron2_available
from sonorisk.detector.predictor import load_detector
from sonorisk.errors import ConfigError, InputError


@pytest.mark.skipif(detectron2_available(), reason="detectron2 is installed")
def test_detectron2_backend_says_it_is_missing(tmp_path: Path):
    cfg = DetectorConfig(backend="detectron2", detectron2_config=str(tmp_path / "c.yaml"),
                         detectron2_weights=str(tmp_path / "m.pth"))
    with pytest.raises(ConfigError, match="detectron2 is not installed"):
        load_detector(cfg)


def test_detectron2_backend_needs_config_and_weights():
    with pytest.raises(InputError, match="needs detectron2_config"):
        load_detector(DetectorConfig(backend="detectron2"))
    with pytest.raises(InputError, match="needs a checkpoint"):
        load_detector(DetectorConfig())
