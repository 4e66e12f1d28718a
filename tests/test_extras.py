"""Install extras (issue 16): scoring needs none; a missing one is one clear line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from sonorisk.cli import main
from sonorisk.extras import EXTRAS, MissingExtraError, import_extra, require_extra

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("ray", "sqlalchemy", "psycopg", "transformers")


def _missing(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``import MODULE`` fail as it does when the package is not installed."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_import_extra_names_the_extra_and_the_pip_command(monkeypatch):
    _missing(monkeypatch, "transformers")
    with pytest.raises(MissingExtraError) as exc:
        import_extra("transformers", "timesformer")
    assert "pip install 'sonorisk[timesformer]'" in str(exc.value)
    assert exc.value.module == "transformers"


def test_a_bug_inside_an_installed_module_is_not_called_a_missing_extra(monkeypatch):
    _missing(monkeypatch, "no_such_dependency_of_sonorisk")
    with pytest.raises(ModuleNotFoundError):
        import_extra("no_such_dependency_of_sonorisk.sub", "serve")


@pytest.mark.parametrize(
    ("argv", "module", "extra"),
    [
        (["serve"], "ray", "serve"),
        (["reader-study", "serve", "study-folder"], "sqlalchemy", "study"),
        (["batch", "archive", "--ray", "auto"], "ray", "serve"),
    ],
)
def test_verbs_that_need_an_extra_say_which(argv, module, extra, monkeypatch, capsys):
    _missing(monkeypatch, module)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"pip install 'sonorisk[{extra}]'" in err and module in err
    assert "Traceback" not in err


def test_the_timesformer_kind_without_transformers_is_one_clear_line(monkeypatch, tmp_path, capsys):
    from sonorisk.video_classifier import train
    from sonorisk.video_classifier.registry import build_classifier

    def fake_train(data, cfg, out, **kw):
        return build_classifier(cfg)  # where the kind's transformers import happens

    _missing(monkeypatch, "transformers")
    monkeypatch.setattr(train, "train_from_dataset", fake_train)
    assert (
        main(
            [
                "train",
                "classifier",
                "--data",
                str(tmp_path),
                "--model",
                "timesformer",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    assert "pip install 'sonorisk[timesformer]'" in capsys.readouterr().err


def test_require_extra_checks_every_module_of_it(monkeypatch):
    _missing(monkeypatch, "jinja2")
    with pytest.raises(MissingExtraError, match=r"sonorisk\[study\]"):
        require_extra("study")


def test_pyproject_extras_match_what_the_code_asks_for():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert set(EXTRAS) <= set(extras)
    assert extras["all"] == ["sonorisk[serve,study,timesformer,onnx,pretrained]"]
    assert "sonorisk[all]" in extras["dev"]
    core = " ".join(project["dependencies"]).lower()
    for name in ("ray", "sqlalchemy", "psycopg", "transformers", "fastapi", "uvicorn"):
        assert name not in core, f"{name} is a core dependency; scoring does not need it"
    wanted = {"serve": "ray[serve]", "study": "sqlalchemy", "timesformer": "transformers"}
    for extra, requirement in wanted.items():
        assert any(r.startswith(requirement) for r in extras[extra]), (extra, extras[extra])
    setup = (REPO / "scripts" / "setup.sh").read_text()
    docker = (REPO / "Dockerfile").read_text()
    assert '-e ".[all,dev]"' in setup and '".[all]"' in docker


SCORE_IMPORTS = textwrap.dedent("""
    import sys
    import numpy as np
    from sonorisk.io.writer import write_video
    import sonorisk.pipeline.score_file  # noqa: F401
    heavy = {heavy!r}
    assert not [m for m in heavy if m in sys.modules], "import score_file"
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(12)]
    write_video({video!r}, frames, 25.0, "mjpeg")
    from sonorisk.cli import main
    code = main(["score", {video!r}, "--out", {out!r}, "--no-progress"])
    loaded = [m for m in heavy if m in sys.modules]
    print("exit", code, "loaded", loaded)
    sys.exit(3 if loaded else code)
""")


def test_score_imports_no_serving_study_or_timesformer_stack(tmp_path):
    """`import sonorisk.pipeline.score_file` and a real `sonorisk score` run load none
    of Ray, SQLAlchemy, psycopg and transformers (checked in a fresh interpreter)."""
    script = SCORE_IMPORTS.format(
        heavy=HEAVY, video=str(tmp_path / "v.avi"), out=str(tmp_path / "out")
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "exit 0 loaded []" in run.stdout
    assert (tmp_path / "out" / "v.json").is_file()
