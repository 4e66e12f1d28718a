"""Obuchowski-Rockette MRMC analysis and the iMRMC export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sonorisk.eval.errors import EvalInputError
from sonorisk.eval.mrmc import (
    _error_covariance,
    obuchowski_rockette,
    rating_cube,
    write_imrmc,
)
from sonorisk.eval.roc import auc


def test_jackknife_shortcut_equals_brute_force(loaded):
    _, _, reads = loaded
    cube, y, _, _ = rating_cube(reads)
    flat = cube.reshape(-1, cube.shape[2])[:3]
    _, cov = _error_covariance(y, flat, "jackknife")
    loo = np.array(
        [[auc(np.delete(y, i), np.delete(row, i)) for i in range(len(y))] for row in flat]
    )
    c = len(y)
    dev = loo - loo.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(cov, (c - 1) / c * dev @ dev.T, rtol=1e-9, atol=1e-15)


def test_or_analysis_on_simulated_study(loaded):
    _, _, reads = loaded
    res = obuchowski_rockette(reads)
    for rd in res.readers:
        part = reads[(reads["reader"] == rd) & (reads["session"] == "aided")]
        assert res.reader_aucs.loc[rd, "aided"] == pytest.approx(
            auc(part["truth"], part["birads_code"])
        )
    assert res.difference.estimate == pytest.approx(
        res.reader_aucs["aided"].mean() - res.reader_aucs["unaided"].mean()
    )
    assert res.difference.ci_low < res.difference.estimate < res.difference.ci_high
    # a real aid effect in the simulation: aided AUC higher and significant
    assert res.difference.estimate > 0 and res.test.p_value < 0.05
    jk = obuchowski_rockette(reads, covariance="jackknife")
    assert jk.test.p_value == pytest.approx(res.test.p_value, rel=0.3)
    assert jk.components["var"] == pytest.approx(res.components["var"], rel=0.05)


def test_or_identical_sessions_give_no_difference(loaded):
    _, _, reads = loaded
    un = reads[reads["session"] == "unaided"]
    copy = pd.concat([un, un.assign(session="aided")], ignore_index=True)
    res = obuchowski_rockette(copy)
    assert res.difference.estimate == pytest.approx(0.0, abs=1e-12)
    assert res.test.p_value is None or res.test.p_value > 0.99


def test_or_requires_crossed_design(loaded):
    _, _, reads = loaded
    missing = reads.drop(
        index=reads.index[(reads["reader"] == "R2") & (reads["session"] == "aided")][:5]
    )
    with pytest.raises(EvalInputError, match="fully crossed"):
        obuchowski_rockette(missing)


def test_imrmc_export(loaded, tmp_path):
    truth, _, reads = loaded
    path = write_imrmc(reads, tmp_path / "imrmc.txt")
    lines = path.read_text().splitlines()
    begin = lines.index("BEGIN DATA:")
    header = dict(line.split(": ") for line in lines[1:begin])
    n0, n1 = int((truth["truth"] == 0).sum()), int((truth["truth"] == 1).sum())
    assert header == {"NR": "4", "N0": str(n0), "N1": str(n1), "NM": "2"}
    data = pd.DataFrame(
        [row.split(",") for row in lines[begin + 1 :]],
        columns=["reader", "case", "modality", "score"],
    )
    assert len(data) == (n0 + n1) * (1 + 4 * 2)
    t = data[data["reader"] == "-1"]
    assert set(t["modality"]) == {"truth"} and len(t) == n0 + n1
    assert (
        t.set_index("case")["score"]
        .astype(int)
        .equals(truth["truth"].astype(int).rename("score").rename_axis("case"))
    )
    r1 = data[(data["reader"] == "R1") & (data["modality"] == "aided")].set_index("case")
    part = reads[(reads["reader"] == "R1") & (reads["session"] == "aided")].set_index("case_id")
    assert (r1["score"].astype(float) == part.loc[r1.index, "birads_code"]).all()


def _null_study(rng: np.random.Generator, n_pos: int = 30, n_neg: int = 30, readers: int = 4):
    """Two exchangeable sessions: case effect + reader-by-case and pure noise."""
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    n = len(y)
    case = rng.normal(size=n) + 1.0 * y
    skill = rng.normal(scale=0.3, size=(readers, 1))
    reader_case = rng.normal(scale=0.5, size=(readers, n))
    frames = []
    for session in ("unaided", "aided"):
        score = case * (1 + skill) + reader_case + rng.normal(scale=0.7, size=(readers, n))
        frames.append(pd.DataFrame({
            "reader": np.repeat([f"R{r}" for r in range(readers)], n),
            "case_id": np.tile([f"c{i:03d}" for i in range(n)], readers),
            "session": session, "birads_code": score.ravel(), "truth": np.tile(y, readers),
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_or_size_under_the_null():
    """Under H0 the OR-Hillis test rejects at about its nominal 5% level."""
    rng = np.random.default_rng(31)
    reps = 200
    p = np.array([obuchowski_rockette(_null_study(rng)).test.p_value for _ in range(reps)])
    assert 0.01 <= np.mean(p < 0.05) <= 0.10, np.mean(p < 0.05)
    # and p-values spread over (0, 1) rather than piling up at an end
    assert 0.3 < np.median(p) < 0.7
