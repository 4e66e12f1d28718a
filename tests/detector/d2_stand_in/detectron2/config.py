"""``detectron2.config``: ``get_cfg`` and a CfgNode with attribute access (as yacs')."""

from __future__ import annotations

from typing import Any

import yaml


class CfgNode(dict):
    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def merge_from_file(self, path: str) -> None:
        with open(path) as handle:
            _merge(self, yaml.safe_load(handle) or {})


def _merge(node: CfgNode, data: dict[str, Any]) -> None:
    for key, value in data.items():
        if key not in node:  # detectron2 refuses keys its schema lacks
            raise KeyError(f"Non-existent config key: {key}")
        if isinstance(value, dict):
            _merge(node[key], value)
        else:
            node[key] = value


def get_cfg() -> CfgNode:
    """detectron2's defaults, as far as the backend reads or writes them."""
    return CfgNode(
        MODEL=CfgNode(
            META_ARCHITECTURE="GeneralizedRCNN",
            WEIGHTS="",
            DEVICE="cuda",
            BACKBONE=CfgNode(NAME="build_resnet_fpn_backbone"),
            ROI_HEADS=CfgNode(SCORE_THRESH_TEST=0.05, NUM_CLASSES=80),
            RETINANET=CfgNode(SCORE_THRESH_TEST=0.05),
        ),
        INPUT=CfgNode(FORMAT="BGR"),
    )
