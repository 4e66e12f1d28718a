"""What the command line refuses before any work (issue 15's hostile rerun)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sonorisk.cli import main
from sonorisk.cli_args import finite_float, non_negative_float, positive_float, positive_int


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (finite_float, "nan"),
        (finite_float, "inf"),
        (finite_float, "ten"),
        (positive_float, "0"),
        (positive_float, "-1"),
        (non_negative_float, "-0.5"),
        (positive_int, "0"),
        (positive_int, "-5"),
        (positive_int, "2.5"),
    ],
)
def test_meaningless_numbers_are_refused(parse, text: str):
    with pytest.raises(argparse.ArgumentTypeError):
        parse(text)


def test_sensible_numbers_pass():
    assert finite_float("-2.5") == -2.5 and positive_float("0.1") == 0.1
    assert non_negative_float("0") == 0.0 and positive_int("3") == 3


@pytest.mark.parametrize(
    "argv",
    [
        ["info", "v.avi", "--max-frames", "-5"],
        ["info", "v.avi", "--timeout", "nan"],
        ["batch", "d", "--workers", "-1"],
        ["batch", "d", "--threads", "0"],
        ["batch", "d", "--file-timeout", "-3"],
        ["eval", "report", "p.csv", "--level", "nan"],
    ],
)
def test_the_verbs_refuse_them_with_the_flag_named(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    flag = next(a for a in argv if a.startswith("--"))
    assert f"argument {flag}" in capsys.readouterr().err


def test_an_out_folder_that_is_a_file_is_one_clear_line(tmp_path: Path, capsys):
    predictions = tmp_path / "pred.csv"
    predictions.write_text("id,model\n" + "".join(f"{i},{i / 10}\n" for i in range(10)))
    truth = tmp_path / "truth.csv"
    truth.write_text("id,truth\n" + "".join(f"{i},{int(i >= 5)}\n" for i in range(10)))
    blocker = tmp_path / "a_file.txt"
    blocker.write_text("not a folder")
    code = main(
        [
            "eval",
            "report",
            str(predictions),
            "--truth",
            str(truth),
            "--out",
            str(blocker),
            "--bootstrap",
            "20",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "a_file.txt" in err and ("Not a directory" in err or "File exists" in err), err
