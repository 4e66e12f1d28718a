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


def test_one_layering_defaults_checkpoint_file_flags(tmp_path) -> None:
    """The checkpoint's config sits under the file, the file under the flags."""
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 0.01\n")
    stored = {"model": "timesformer", "optim": {"lr": 0.5, "epochs": 2}}
    cfg = load_config(Train, path, {"optim.epochs": 9}, base=stored)
    assert (cfg.model, cfg.optim.lr, cfg.optim.epochs) == ("timesformer", 0.01, 9)
    assert stored == {"model": "timesformer", "optim": {"lr": 0.5, "epochs": 2}}  # not changed


@dataclass
class Checked:
    n: int = 1

    def validate(self) -> None:
        if self.n < 1:
            raise ConfigError("n", f"must be >= 1, got {self.n}")


def test_load_config_validates_once_every_layer_is_in() -> None:
    assert load_config(Checked, None, {"n": 3}).n == 3
    with pytest.raises(ConfigError, match="must be >= 1"):
        load_config(Checked, None, {"n": 0})


# Arguments that name inputs and outputs of one run, not settings of a config.
RUN_ARGUMENTS = {"help", "videos", "inputs", "out", "json_dir", "overlay", "no_progress", "config"}


def _config_keys(cls: type, prefix: str = "") -> set[str]:
    import dataclasses
    import typing

    keys = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        keys.add(prefix + f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            keys |= _config_keys(hints[f.name], f"{prefix}{f.name}.")
    return keys


@pytest.mark.parametrize("verb", ["score", "batch", "serve"])
def test_every_setting_flag_is_a_config_key(verb: str) -> None:
    from sonorisk.cli import build_parser
    from sonorisk.pipeline.config import BatchConfig, ScoreConfig
    from sonorisk.serving.config import ServeConfig

    cls = {"score": ScoreConfig, "batch": BatchConfig, "serve": ServeConfig}[verb]
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "verb").choices[verb]
    dests = {a.dest for a in sub._actions} - RUN_ARGUMENTS
    assert dests and dests <= _config_keys(cls), dests - _config_keys(cls)


def test_score_layers_file_then_flags_and_models_flags_are_keys(tmp_path) -> None:
    from sonorisk.cli import build_parser
    from sonorisk.pipeline.cli import score_config

    path = tmp_path / "score.yaml"
    path.write_text(
        "detector_batch_size: 2\nmodels:\n  device: cuda\n  detector: a.pt\n"
        "  detector_min_size: 320\n"
    )
    args = build_parser().parse_args(
        ["score", "v.avi", "--config", str(path), "--detector-min-size", "96", "--models", "b"]
    )
    cfg = score_config(args)
    assert (cfg.detector_batch_size, cfg.models.device, cfg.models.detector_min_size) == (
        2,
        "cuda",
        96,
    )
    assert cfg.models.detector is None  # --models names the pair: the file's file gives way
    assert cfg.models.detector_tta is None  # unset: the detector file's own setting
    args = build_parser().parse_args(["score", "v.avi", "--config", str(path), "--no-detector-tta"])
    assert score_config(args).models.detector_tta is False
    assert cfg.pipeline().detector_batch_size == 2


def test_batch_passes_the_flags_score_has(tmp_path, monkeypatch) -> None:
    """`batch --detector-min-size` reached no setting before (issue 16)."""
    from sonorisk.cli import main
    from sonorisk.serving import batch

    seen = {}

    def fake_run(inputs, settings, out, **kw):
        seen.update(settings=settings, **kw)
        return batch.BatchSummary(total=0, skipped=0)

    monkeypatch.setattr(batch, "run_batch", fake_run)
    assert (
        main(
            [
                "batch",
                str(tmp_path),
                "--detector-min-size",
                "96",
                "--detector-tta",
                "--keyframe-interval",
                "2",
                "--threads",
                "1",
                "--workers",
                "3",
                "--out",
                str(tmp_path / "r.csv"),
            ]
        )
        == 0
    )
    settings = seen["settings"]
    assert settings.detector_min_size == 96 and seen["workers"] == 3
    assert settings.detector_tta is True
    assert settings.pipeline.tracking.keyframe_interval == 2
