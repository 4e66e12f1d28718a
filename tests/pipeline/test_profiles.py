"""Pipeline profiles: pipeline YAMLs shipped inside the package, named by a word."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from sonorisk.cli import build_parser
from sonorisk.config import load_config
from sonorisk.errors import ConfigError
from sonorisk.pipeline.cli import score_config
from sonorisk.pipeline.config import PROFILE_DIR, PROFILES, PipelineConfig, pipeline_yaml
from sonorisk.serving.config import ServeConfig
from sonorisk.serving.server import resolve_paths

REPO = Path(__file__).parents[2]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_is_a_valid_pipeline_config_shipped_in_the_package(name: str) -> None:
    path = pipeline_yaml(name)
    assert path == PROFILE_DIR / f"{name}.yaml"
    assert path.is_file()
    config = load_config(PipelineConfig, path)  # unknown keys or bad values would raise
    assert config != PipelineConfig(), f"{name} changes nothing"
    # A wheel carries what pyproject's package-data names; the profiles must be in it.
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = data["tool"]["setuptools"]["package-data"]["sonorisk"]
    relative = path.relative_to(REPO / "sonorisk").as_posix()
    assert any(fnmatch.fnmatch(relative, g) for g in globs), relative
    # The repository's old paths (configs/pipeline-NAME.yaml) are the same file.
    assert (REPO / "configs" / f"pipeline-{name}.yaml").resolve() == path.resolve()


def test_the_cpu_profile_by_name_sets_what_it_says() -> None:
    args = build_parser().parse_args(["score", "v.avi", "--config", "cpu"])
    config = score_config(args).pipeline()
    assert config.tracking.keyframe_interval == 6
    assert config.clip_stride == 16
    # Flags still override the profile.
    args = build_parser().parse_args(
        ["score", "v.avi", "--config", "cpu", "--keyframe-interval", "2"]
    )
    assert score_config(args).pipeline().tracking.keyframe_interval == 2


def test_a_mistyped_profile_names_the_profiles() -> None:
    with pytest.raises(ConfigError, match="not a profile.*cpu, gpu, live-replay"):
        pipeline_yaml("cpuu")
    args = build_parser().parse_args(["batch", "folder", "--out", "x.csv", "--config", "gpuu"])
    with pytest.raises(ConfigError, match="gpuu"):
        from sonorisk.serving.cli import _batch

        _batch(args)


def test_a_file_of_a_profiles_name_wins_and_paths_pass_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("cpu").write_text("detector_batch_size: 2\n")
    assert pipeline_yaml("cpu") == Path("cpu")
    assert load_config(PipelineConfig, pipeline_yaml("cpu")).detector_batch_size == 2
    missing = tmp_path / "nowhere.yaml"
    assert pipeline_yaml(missing) == missing  # load_config reports it missing, by path


def test_serve_resolves_a_profile_to_the_packaged_file(tmp_path: Path) -> None:
    # The default bundle resolves here (it ships in the package).
    config = resolve_paths(ServeConfig(pipeline="live-replay", data_dir=str(tmp_path)))
    assert config.pipeline == str((PROFILE_DIR / "live-replay.yaml").resolve())
    with pytest.raises(ConfigError, match="not a profile"):
        resolve_paths(ServeConfig(pipeline="livereplay", data_dir=str(tmp_path)))
