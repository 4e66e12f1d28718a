"""Optional detectron2 backend behind the ``FrameDetector`` interface.

detectron2 is not on PyPI and is not installed here; this module imports it
only when a detectron2 detector is asked for, and says so clearly when it is
missing. It loads a detectron2 YAML config and a ``.pth`` checkpoint (e.g. the
paper's Faster R-CNN R34-FPN trained with detectron2) and returns the same
``Detection`` records as the torchvision backend. See docs/detector.md.

Through the one loader (``sonorisk.models``): :func:`save_detectron2_checkpoint`
packs the YAML text and the weights (read with ``weights_only``) into a
detector envelope with ``backend: detectron2``; a bundle or ``--detector`` file
of that backend is rebuilt by :meth:`Detectron2Detector.from_payload`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sonorisk.detector.checkpoint import DISCLAIMER
from sonorisk.detector.common import clean_detections, is_blank, to_rgb_uint8
from sonorisk.detector.config import InferenceConfig
from sonorisk.detector.interface import FrameLike, as_frames
from sonorisk.errors import ConfigError, InputError
from sonorisk.records import Detection

INSTALL_HINT = (
    "detectron2 is not installed; build it from source for your torch "
    "(pip install 'git+https://github.com/facebookresearch/detectron2.git') "
    "or use backend: torchvision"
)


def detectron2_available() -> bool:
    try:
        import detectron2  # noqa: F401
    except ImportError:
        return False
    return True


class Detectron2Detector:
    """A detectron2 model (config + checkpoint) that answers like ``TorchvisionDetector``."""

    def __init__(
        self,
        config_file: str | Path,
        weights: str | Path | None,
        inference: InferenceConfig | None = None,
        lesion_class: int = 0,
        state_dict: dict[str, Any] | None = None,
    ) -> None:
        """From a YAML config and a ``.pth`` file, or (``weights=None``) the
        tensors of ``state_dict``."""
        _require_detectron2()
        from detectron2.config import get_cfg
        from detectron2.engine import DefaultPredictor

        files = [(Path(config_file), "detectron2 config")]
        if weights is not None:
            files.append((Path(weights), "detectron2 checkpoint"))
        for path, what in files:
            if not path.is_file():
                raise InputError(path, f"{what} not found")
        _check_plain_yaml(Path(config_file))
        self.inference = inference or InferenceConfig()
        cfg = get_cfg()
        cfg.merge_from_file(str(config_file))
        # Weights are read here without pickle (weights_only), never by detectron2's
        # own checkpointer, which unpickles .pkl files.
        cfg.MODEL.WEIGHTS = ""
        if weights is not None:
            from sonorisk.models.envelope import read_state_dict

            state_dict = read_state_dict(weights, what="detectron2 checkpoint")
        cfg.MODEL.DEVICE = (
            "cuda" if self.inference.device in ("auto", "cuda") and _cuda_available() else "cpu"
        )
        # Let everything through; the operating threshold is applied below.
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
        cfg.MODEL.RETINANET.SCORE_THRESH_TEST = 0.0
        cfg.INPUT.FORMAT = "RGB"
        self._predictor = DefaultPredictor(cfg)
        if state_dict is not None:
            self._predictor.model.load_state_dict(state_dict)
        self.lesion_class = lesion_class
        self.info: dict[str, Any] = {
            "backend": "detectron2",
            "config_file": str(config_file),
            "checkpoint": str(weights),
            "architecture": cfg.MODEL.META_ARCHITECTURE,
            "backbone": cfg.MODEL.BACKBONE.NAME,
            "weights_source": {"kind": "file", "name": str(weights)},
        }

    @classmethod
    def from_payload(
        cls, payload: dict[str, Any], path: str | Path, inference: InferenceConfig | None = None
    ) -> Detectron2Detector:
        """From a detector checkpoint dict with ``backend: detectron2`` (read from
        ``path`` by ``load_checkpoint``): its YAML text and its tensors."""
        import tempfile

        _require_detectron2()
        text = payload.get("detectron2_yaml")
        if not isinstance(text, str) or not text.strip():
            raise InputError(
                path, "detectron2 detector checkpoint lacks its YAML config (detectron2_yaml)"
            )
        with tempfile.TemporaryDirectory() as tmp:
            config_file = Path(tmp) / "config.yaml"
            config_file.write_text(text)
            detector = cls(
                config_file,
                None,
                inference,
                int(payload.get("lesion_class", 0)),
                state_dict=payload["state_dict"],
            )
        detector.info.update(
            {
                "checkpoint": str(path),
                "config_file": f"{path} (detectron2_yaml)",
                "weights_source": payload.get("weights_source", {}),
                "training": payload.get("training", {}),
                "disclaimer": payload.get("disclaimer", DISCLAIMER),
            }
        )
        return detector

    def predict(
        self, frames: Sequence[FrameLike], frame_indices: Sequence[int] | None = None
    ) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        for frame in as_frames(frames, frame_indices):
            index = frame.index
            rgb = to_rgb_uint8(frame.image, f"frame {index}", self.inference)
            if is_blank(rgb):
                out.append([])
                continue
            # DefaultPredictor takes one image at a time (its own resize and format).
            instances = self._predictor(rgb)["instances"].to("cpu")
            keep = instances.pred_classes.numpy() == self.lesion_class
            boxes = instances.pred_boxes.tensor.numpy()[keep]
            scores = instances.scores.numpy()[keep]
            out.append(
                clean_detections(
                    np.asarray(boxes),
                    np.asarray(scores),
                    rgb.shape[1],
                    rgb.shape[0],
                    int(index),
                    self.inference.score_thresh,
                    self.inference.containment_thresh,
                    self.inference.containment_score_factor,
                )
            )
        return out


def _check_plain_yaml(path: Path) -> None:
    """detectron2 falls back to ``yaml.unsafe_load`` (which can run code) when a
    config is not plain YAML: refuse such a file first."""
    import yaml

    try:
        yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(path, f"not plain YAML ({exc}); configs must not run code") from exc


def _require_detectron2() -> None:
    if not detectron2_available():
        raise ConfigError("backend", INSTALL_HINT)


def save_detectron2_checkpoint(
    path: str | Path,
    config_file: str | Path,
    weights: str | Path,
    *,
    inference: InferenceConfig | None = None,
    lesion_class: int = 0,
    training: dict[str, Any] | None = None,
) -> Path:
    """Pack a detectron2 YAML config and its ``.pth`` weights (``{"model": state}``
    or a bare state dict, read without pickle) into one detector envelope that
    ``sonorisk.models`` loads like any detector. detectron2 is not needed here."""
    import datetime as _dt

    from sonorisk.config import to_dict
    from sonorisk.detector.backbones import WeightsSource
    from sonorisk.detector.checkpoint import FORMAT_VERSION, KIND
    from sonorisk.detector.config import DetectorConfig
    from sonorisk.models.bundle import sha256_file
    from sonorisk.models.envelope import read_state_dict, write_envelope

    config_file, weights = Path(config_file), Path(weights)
    if not config_file.is_file():
        raise InputError(config_file, "detectron2 config not found")
    state = read_state_dict(weights, what="detectron2 checkpoint")
    config = DetectorConfig(backend="detectron2", inference=inference or InferenceConfig())
    payload = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "backend": "detectron2",
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": to_dict(config),
        "detectron2_yaml": config_file.read_text(),
        "lesion_class": lesion_class,
        "weights_source": WeightsSource("file", str(weights), sha256_file(weights)).to_dict(),
        "training": training or {},
        "metrics": {},
        "disclaimer": DISCLAIMER,
    }
    return write_envelope(path, payload, state, state_key="state_dict")


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())
