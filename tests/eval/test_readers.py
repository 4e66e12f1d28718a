"""Reader analyses: BI-RADS scale, Table 4 pooling, Table 5 changes, terciles, subgroups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sonorisk.eval.binary import ConfusionCounts
from sonorisk.eval.birads import birads_codes, birads_to_binary, normalize_birads
from sonorisk.eval.errors import BiradsScaleError, MissingValueError
from sonorisk.eval.readers import (
    birads_change_table,
    mean_reader_sensitivity,
    reader_table,
    reading_time_terciles,
)
from sonorisk.eval.subgroups import split_covariate, subgroup_analysis
from sonorisk.eval.tables import load_reads, load_truth


def test_birads_scale():
    assert [normalize_birads(v) for v in ("4a", " 4B", "BI-RADS 4c", 3, 5.0, "birads 2")] == [
        "4A",
        "4B",
        "4C",
        "3",
        "5",
        "2",
    ]
    assert birads_codes(["1", "3", "4A", "5", "6"]).tolist() == [0, 2, 3, 6, 7]
    assert birads_to_binary(["2", "3", "4A", "4B", "4C", "5"]).tolist() == [0, 0, 1, 1, 1, 1]
    for bad, reason in (
        ("7", "outside the scale"),
        ("0", "incomplete"),
        ("4", "ambiguous"),
        ("4D", "outside the scale"),
    ):
        with pytest.raises(BiradsScaleError, match=reason):
            normalize_birads(bad, "reads.csv: column 'birads'", row=3)
    with pytest.raises(MissingValueError):
        normalize_birads(None)


def _tiny_study():
    truth = load_truth(
        pd.DataFrame(
            {"id": ["a", "b", "c", "d"], "truth": ["malignant", "malignant", "benign", "benign"]}
        )
    )
    rows = []
    unaided = {"R1": ["4B", "3", "4A", "2"], "R2": ["5", "4A", "3", "3"]}
    aided = {"R1": ["4C", "4A", "3", "2"], "R2": ["5", "4B", "3", "2"]}
    for session, table in (("unaided", unaided), ("aided", aided)):
        for reader, cats in table.items():
            for case, cat in zip("abcd", cats, strict=True):
                rows.append(
                    {
                        "reader": reader,
                        "case_id": case,
                        "session": session,
                        "birads": cat,
                        "reading_time_s": float(ord(case)) + len(reader),
                    }
                )
    return truth, load_reads(pd.DataFrame(rows), truth)


def test_reader_table_counts_and_pooling():
    truth, reads = _tiny_study()
    ai = pd.Series([1, 1, 1, 0], index=["a", "b", "c", "d"])
    rows = {(r.label, r.group): r for r in reader_table(reads, ai, "AI")}
    assert rows[("AI", "AI")].metrics.counts == ConfusionCounts(tp=2, fn=0, tn=1, fp=1)
    # R1 unaided: a 4B (TP), b 3 (FN), c 4A (FP), d 2 (TN)
    assert rows[("R1", "unaided")].metrics.counts == ConfusionCounts(1, 1, 1, 1)
    assert rows[("R2", "unaided")].metrics.counts == ConfusionCounts(2, 0, 2, 0)
    assert rows[("Avg", "unaided")].metrics.counts == ConfusionCounts(3, 1, 3, 1)
    assert rows[("R1", "aided")].metrics.counts == ConfusionCounts(2, 0, 2, 0)
    assert rows[("R1", "aided")].comparator == "R1 unaided"
    assert rows[("R1", "unaided")].comparator == "AI"
    assert set(rows[("Avg", "aided")].tests) == {
        "sensitivity",
        "specificity",
        "accuracy",
        "ppv",
        "npv",
    }
    assert mean_reader_sensitivity(reads) == pytest.approx(3 / 4)


def test_birads_change_table():
    _, reads = _tiny_study()
    t = birads_change_table(reads).set_index(["reader", "truth"])
    r1m = t.loc[("R1", "Malignant (2)")]
    assert (r1m["no change"], r1m["upgrade total"], r1m["downgrade total"]) == (0, 2, 0)
    assert r1m["up 4B -> 4C"] == 1 and r1m["up 3 -> 4A"] == 1
    assert r1m["crossed to >= 4A"] == 1
    r1b = t.loc[("R1", "Benign (2)")]
    assert r1b["down 4A -> 3"] == 1 and r1b["crossed to < 4A"] == 1  # an avoided biopsy
    r2b = t.loc[("R2", "Benign (2)")]
    assert r2b["down 3 -> 2"] == 1 and r2b["no change"] == 1
    # every read is exactly one of unchanged / up / down
    assert ((t["no change"] + t["upgrade total"] + t["downgrade total"]) == 2).all()


def test_change_table_on_simulated_study(loaded):
    truth, _, reads = loaded
    t = birads_change_table(reads)
    n_class = truth["truth"].value_counts()
    for _, row in t.iterrows():
        n = n_class[1] if row["truth"].startswith("Malignant") else n_class[0]
        assert row["no change"] + row["upgrade total"] + row["downgrade total"] == n
        ups = sum(v for k, v in row.items() if str(k).startswith("up "))
        assert ups == row["upgrade total"]


def test_reading_time_terciles(loaded):
    _, _, reads = loaded
    rows = reading_time_terciles(reads)
    assert [r.tercile for r in rows] == ["fastest third", "middle third", "slowest third"]
    n_pairs = len(reads) // 2
    assert sum(r.n_reads for r in rows) == n_pairs
    assert all(abs(r.n_reads - n_pairs / 3) <= 2 for r in rows)
    assert rows[0].time_range[1] <= rows[1].time_range[0] <= rows[2].time_range[0]


def test_subgroups(loaded):
    truth, preds, _ = loaded
    y = truth["truth"].to_numpy()
    s = preds.scores["WAUVE"].to_numpy()
    age = split_covariate(truth, "age")
    assert set(age) == {"age < 50", "age >= 50"}
    assert (age == "age < 50").sum() == (truth["age"] < 50).sum()
    res = subgroup_analysis(y, s, 0.3, age)
    assert sum(r.n for r in res.rows) == len(y)
    assert set(res.tests) == {"auc", "sensitivity", "specificity", "ppv", "npv", "accuracy"}
    size = split_covariate(truth, "lesion_size_mm")
    assert (size == "size <= 10 mm").sum() == (truth["lesion_size_mm"] <= 10).sum()
    br = split_covariate(truth, "birads")
    assert set(br) <= {"BI-RADS <= 3", "BI-RADS >= 4A"}
    site = split_covariate(truth, "site")
    assert set(site) == {"PUMCH", "NCC"}
    cut = split_covariate(truth, "age", 60.0)
    assert set(cut) == {"age <= 60", "age > 60"}
    # a subgroup holding one class gets an AUC of "n/a (reason)", not an error or NaN
    only_pos = pd.Series(np.where(y == 1, "m", "b"), index=truth.index, name="by_truth")
    res2 = subgroup_analysis(y, s, 0.3, only_pos)
    assert all(not r.auc.defined and "one truth class" in r.auc.undefined for r in res2.rows)
