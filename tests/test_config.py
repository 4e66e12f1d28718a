"""Configs as data: defaults, then YAML, then flags, with clear errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from sonorisk.config import load_config, to_dict
from sonorisk.errors import ConfigError


@dataclass
class Optim:
    lr: float = 1e-3
    epochs: int = 10


@dataclass
class Train:
    model: Literal["i3d", "timesformer"] = "i3d"
    sizes: list[int] = field(default_factory=lambda: [224])
    optim: Optim = field(default_factory=Optim)
    checkpoint: str | None = None


def test_defaults_then_file_then_overrides(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: timesformer\noptim:\n  lr: 0.01\n  epochs: 3\n")
    cfg = load_config(Train, path, {"optim.epochs": 7, "checkpoint": None})
    assert cfg.model == "timesformer"
    assert cfg.optim.lr == pytest.approx(0.01)
    assert cfg.optim.epochs == 7  # flag beats file
    assert cfg.checkpoint is None  # unset flag does not clobber
    assert to_dict(cfg)["optim"] == {"lr": 0.01, "epochs": 7}


def test_int_is_accepted_for_float() -> None:
    cfg = load_config(Train, None, {"optim.lr": 1})
    assert isinstance(cfg.optim.lr, float)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("modle: i3d\n", "unknown key"),
        ("model: resnet\n", "must be one of"),
        ("optim:\n  epochs: many\n", "expected int"),
        ("sizes: 224\n", "expected a list"),
        ("- just\n- a list\n", "mapping"),
        ("model: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_config_names_file_and_reason(tmp_path, text: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(Train, path)
    assert needle in str(exc.value)
    assert "bad.yaml" in str(exc.value)


def test_missing_config_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(Train, tmp_path / "nope.yaml")


def test_input_errors_survive_pickling_as_themselves():
    """Worker processes and Ray replicas send errors back pickled (issue 15)."""
    import pickle

    from sonorisk.errors import DatasetError, InputError, ScoringTimeout

    for cls in (InputError, DatasetError, ScoringTimeout):
        back = pickle.loads(pickle.dumps(cls("v.avi", "frames too small")))
        assert type(back) is cls and (back.source, back.reason) == ("v.avi", "frames too small")
        assert str(back) == "v.avi: frames too small"
