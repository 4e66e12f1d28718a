"""The install story stays true: README, .ci/run, setup script and Dockerfile agree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sonorisk.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2, "README must open with two command blocks"
    return [b.strip() for b in blocks[:2]]


def test_readme_test_command_is_what_ci_runs() -> None:
    _, test_cmd = _readme_commands()
    ci = (REPO / ".ci" / "run").read_text()
    assert test_cmd in ci, f"README test command {test_cmd!r} is not in .ci/run"
    assert "bash scripts/setup.sh" in ci


def test_readme_setup_command_runs_setup_and_the_main_job() -> None:
    setup_cmd, _ = _readme_commands()
    assert setup_cmd.startswith("bash scripts/setup.sh && sonorisk ")
    verb = setup_cmd.split("&& sonorisk ", 1)[1].split()[0]
    # The verb of the main job must exist in the CLI.
    choices = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert verb in choices, f"README main job uses unknown verb {verb!r}"


def test_dockerfile_installs_what_setup_installs() -> None:
    setup = (REPO / "scripts" / "setup.sh").read_text()
    runtime = re.search(r"^RUNTIME_APT_PACKAGES=\(([^)]*)\)", setup, re.M)
    tests_only = re.search(r"^TEST_APT_PACKAGES=\(([^)]*)\)", setup, re.M)
    assert runtime is not None and tests_only is not None
    assert re.search(
        r'^APT_PACKAGES=\("\$\{RUNTIME_APT_PACKAGES\[@\]\}" '
        r'"\$\{TEST_APT_PACKAGES\[@\]\}"\)',
        setup,
        re.M,
    ), "setup installs both"
    docker = (REPO / "Dockerfile").read_text()
    install = re.search(r"apt-get install[^\n]*\\\n(.*?)&&", docker, re.S)
    assert install is not None
    for pkg in runtime.group(1).split():
        assert re.search(rf"\b{re.escape(pkg)}\b", install.group(1)), f"Dockerfile lacks {pkg}"
    for pkg in tests_only.group(1).split():  # test tools stay out of the service image
        assert not re.search(rf"\b{re.escape(pkg)}\b", install.group(1)), f"image has {pkg}"
    assert "-c constraints.txt" in docker and "-c constraints.txt" in setup


def test_constraints_pin_torch_and_torchvision() -> None:
    pins = {
        line.split("==")[0]: line.split("==")[1]
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert {k: pins[k] for k in ("torch", "torchvision")} == {
        "torch": "2.14.1",
        "torchvision": "0.29.1",
    }
    # Only what must be pinned: torch (see docs/design.md), the versions model files
    # and exported graphs were checked with (safetensors; onnxruntime and onnx), and
    # the type checker and the formatter (mypy, ruff).
    assert set(pins) <= {
        "torch",
        "torchvision",
        "safetensors",
        "onnxruntime",
        "onnx",
        "mypy",
        "ruff",
    }


def test_console_script_help_lists_verbs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sonorisk.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "not a medical device" in out.stdout
    for verb in ("train", "eval"):
        assert verb in out.stdout


def test_unknown_verb_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-verb"])
    assert exc.value.code == 2
