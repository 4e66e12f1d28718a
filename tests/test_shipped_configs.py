"""Every config the repository ships loads with the schema its name says.

Configs are data that scripts and docs point at; a renamed field or a typo in
one would otherwise surface only when someone runs a long training with it.
``load_config`` rejects unknown keys, so a file is also checked against the
schemas it is *not* for (a detector config must not pass as a classifier's).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sonorisk.config import load_config
from sonorisk.detector.config import DetectorConfig
from sonorisk.errors import InputError
from sonorisk.pipeline.config import BatchConfig
from sonorisk.serving.config import ServeConfig
from sonorisk.still_classifier.config import StillClassifierConfig
from sonorisk.video_classifier.config import ClassifierConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# File name prefix -> schema. Pipeline files are given to `sonorisk batch`
# (BatchConfig, which extends the score and pipeline configs).
SCHEMAS: dict[str, type] = {
    "detector": DetectorConfig,
    "classifier": ClassifierConfig,
    "still-classifier": StillClassifierConfig,
    "pipeline": BatchConfig,
    "serve": ServeConfig,
}


def schema_of(path: Path) -> type:
    # Longest prefix first: "still-classifier" before "classifier".
    for prefix in sorted(SCHEMAS, key=len, reverse=True):
        if path.name.startswith(prefix):
            return SCHEMAS[prefix]
    raise AssertionError(f"{path}: no schema for this name; add its prefix to SCHEMAS")


SHIPPED = sorted(CONFIGS.rglob("*.yaml"))


def test_the_configs_folder_is_found():
    names = {p.name for p in SHIPPED}
    assert {"detector.yaml", "classifier.yaml", "pipeline.yaml", "serve.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_shipped_config_loads_with_its_schema_only(path: Path):
    schema = schema_of(path)
    load_config(schema, path)
    for other in {*SCHEMAS.values()} - {schema}:
        with pytest.raises(InputError):
            load_config(other, path)
