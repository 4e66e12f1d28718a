"""Multi-reader multi-case ROC analysis: aided against unaided AUC.

Obuchowski-Rockette (1995) model with Hillis (2007) denominator degrees of
freedom (random readers, random cases), error covariances from DeLong or from
the case jackknife. Also writes the reads in iMRMC's input format so an
analysis can be checked with the FDA's tool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from sonorisk.eval.errors import EvalInputError
from sonorisk.eval.intervals import Estimate, TestResult
from sonorisk.eval.roc import _midrank
from sonorisk.eval.validation import require_both_classes

COVARIANCE_METHODS = ("delong", "jackknife")


@dataclass(frozen=True)
class MrmcResult:
    modalities: tuple[str, ...]
    readers: tuple[str, ...]
    reader_aucs: pd.DataFrame  # readers x modalities
    modality_aucs: dict[str, Estimate]  # mean AUC over readers, with Hillis CI
    difference: Estimate  # second modality minus first
    test: TestResult  # OR F-test of equal mean AUCs
    covariance_method: str
    components: dict[str, float]  # var, cov1, cov2, cov3, MS(T), MS(T*R)


def rating_cube(
    reads: pd.DataFrame,
    rating: str = "birads_code",
    modalities: tuple[str, ...] = ("unaided", "aided"),
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], list[str]]:
    """(modality, reader, case) ratings and the truth per case; needs a fully crossed design."""
    if rating not in reads.columns:
        raise EvalInputError("reads", f"no rating column {rating!r} for MRMC")
    part = reads[reads["session"].isin(modalities)]
    readers = tuple(sorted(part["reader"].unique()))
    cases = sorted(part["case_id"].unique())
    # Integer codes and one scatter: pivoting per reader is ~50x slower.
    mi = pd.Categorical(part["session"], categories=list(modalities)).codes
    ri = pd.Categorical(part["reader"], categories=list(readers)).codes
    ci = pd.Categorical(part["case_id"], categories=cases).codes
    cube = np.full((len(modalities), len(readers), len(cases)), np.nan)
    seen = np.zeros(cube.shape, dtype=int)
    np.add.at(seen, (mi, ri, ci), 1)
    cube[mi, ri, ci] = pd.to_numeric(part[rating], errors="coerce").to_numpy(dtype=float)
    for i, mod in enumerate(modalities):
        for j, rd in enumerate(readers):
            if not seen[i, j].any():
                raise EvalInputError(
                    "reads",
                    f"MRMC needs every reader in every session: reader {rd!r} has no {mod!r} reads",
                )
    if (seen > 1).any():
        raise EvalInputError("reads", "MRMC: a reader read a case twice in one session")
    if (seen == 0).any() or np.isnan(cube).any():
        raise EvalInputError(
            "reads",
            "MRMC needs a fully crossed design: some reader did not "
            "read some case in both sessions (or a rating is missing)",
        )
    truth = part.drop_duplicates("case_id").set_index("case_id").loc[cases, "truth"]
    return cube, truth.to_numpy().astype(int), readers, cases


def _placements(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs (k,), positive placements (k, m) and negative placements (k, n)."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    tz = _midrank(np.concatenate([pos, neg], axis=1))
    # rank sums of halves are exact in floating point; this order keeps AUC in [0, 1]
    aucs = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    v10 = (tz[:, :m] - _midrank(pos)) / n
    v01 = 1.0 - (tz[:, m:] - _midrank(neg)) / m
    return aucs, v10, v01


def _error_covariance(
    y: np.ndarray, flat: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray]:
    aucs, v10, v01 = _placements(y, flat)
    m, n = v10.shape[1], v01.shape[1]
    if method == "delong":
        return aucs, np.cov(v10) / m + np.cov(v01) / n
    # Jackknife over cases: leaving out one case changes the AUC by its placement
    # (exactly, since the Mann-Whitney AUC is a mean of placements).
    loo_pos = (m * aucs[:, None] - v10) / (m - 1)
    loo_neg = (n * aucs[:, None] - v01) / (n - 1)
    loo = np.concatenate([loo_pos, loo_neg], axis=1)
    c = loo.shape[1]
    dev = loo - loo.mean(axis=1, keepdims=True)
    return aucs, (c - 1) / c * dev @ dev.T


def obuchowski_rockette(
    reads: pd.DataFrame,
    rating: str = "birads_code",
    covariance: str = "delong",
    level: float = 0.95,
    modalities: tuple[str, ...] = ("unaided", "aided"),
) -> MrmcResult:
    if covariance not in COVARIANCE_METHODS:
        raise EvalInputError("MRMC", f"covariance must be one of {COVARIANCE_METHODS}")
    cube, y, readers, _ = rating_cube(reads, rating, modalities)
    n_pos, n_neg = require_both_classes(y, "reads: truth")
    if min(n_pos, n_neg) < 2:
        # Case (co)variances, DeLong or jackknife, need 2 cases of each class (pROC: NA).
        raise EvalInputError(
            "reads",
            f"MRMC undefined with {n_pos} malignant and {n_neg} "
            "benign case(s): needs at least 2 of each",
        )
    t, r, _ = cube.shape
    if r < 2:
        raise EvalInputError("reads", "MRMC needs at least 2 readers")
    aucs, cov = _error_covariance(y, cube.reshape(t * r, -1), covariance)
    theta = aucs.reshape(t, r)
    mod_idx = np.repeat(np.arange(t), r)
    rd_idx = np.tile(np.arange(r), t)
    same_m = mod_idx[:, None] == mod_idx[None, :]
    same_r = rd_idx[:, None] == rd_idx[None, :]
    var = float(np.mean(np.diag(cov)))
    cov1 = float(cov[~same_m & same_r].mean())
    cov2 = float(cov[same_m & ~same_r].mean())
    cov3 = float(cov[~same_m & ~same_r].mean())
    mean_t = theta.mean(axis=1)
    grand = theta.mean()
    ms_t = r * float(np.sum((mean_t - grand) ** 2)) / (t - 1)
    inter = theta - mean_t[:, None] - theta.mean(axis=0)[None, :] + grand
    ms_tr = float(np.sum(inter**2)) / ((t - 1) * (r - 1))
    denom = ms_tr + r * max(cov2 - cov3, 0.0)
    alpha = 1.0 - level
    method = (
        f"Obuchowski-Rockette, Hillis (2007) df, {covariance} covariance, random readers and cases"
    )
    diff = float(mean_t[-1] - mean_t[0])
    if denom <= 0:
        test = TestResult(None, None, method, undefined="zero variance between readers and cases")
        diff_est = Estimate(diff, None, None, method, level, "zero variance")
    else:
        f_stat = ms_t / denom
        ddf = denom**2 / (ms_tr**2 / ((t - 1) * (r - 1))) if ms_tr > 0 else math.inf
        p = float(stats.f.sf(f_stat, t - 1, ddf))
        se = math.sqrt(2.0 / r * denom)
        tq = float(stats.t.ppf(1 - alpha / 2, ddf))
        diff_est = Estimate(
            diff, diff - tq * se, diff + tq * se, f"{method}; t interval with {ddf:.1f} df", level
        )
        test = TestResult(
            f_stat,
            p,
            method,
            df=ddf,
            estimate=diff,
            ci_low=diff_est.ci_low,
            ci_high=diff_est.ci_high,
        )
    modality_aucs = {}
    for i, mod in enumerate(modalities):
        block = cov[np.ix_(mod_idx == i, mod_idx == i)]
        off = block[~np.eye(r, dtype=bool)]
        cov2_i = float(off.mean())
        ms_r = float(np.var(theta[i], ddof=1))
        d_i = ms_r + r * max(cov2_i, 0.0)
        if d_i <= 0:
            modality_aucs[mod] = Estimate(
                float(mean_t[i]), None, None, method, level, "zero variance"
            )
            continue
        ddf_i = d_i**2 / (ms_r**2 / (r - 1)) if ms_r > 0 else math.inf
        half = float(stats.t.ppf(1 - alpha / 2, ddf_i)) * math.sqrt(d_i / r)
        modality_aucs[mod] = Estimate(
            float(mean_t[i]),
            max(0.0, float(mean_t[i] - half)),
            min(1.0, float(mean_t[i] + half)),
            f"{method}; single-modality t interval, {ddf_i:.1f} df",
            level,
        )
    return MrmcResult(
        tuple(modalities),
        readers,
        pd.DataFrame(theta.T, index=list(readers), columns=list(modalities)),
        modality_aucs,
        diff_est,
        test,
        covariance,
        {"var": var, "cov1": cov1, "cov2": cov2, "cov3": cov3, "MS(T)": ms_t, "MS(T*R)": ms_tr},
    )


def write_imrmc(
    reads: pd.DataFrame,
    path: str | Path,
    rating: str = "birads_code",
    modalities: tuple[str, ...] = ("unaided", "aided"),
) -> Path:
    """Write reads in iMRMC's input format: a short study description, ``BEGIN DATA:``, then
    ``readerID,caseID,modalityID,score`` rows; truth rows have readerID -1 and modalityID truth."""
    cube, y, readers, cases = rating_cube(reads, rating, modalities)
    lines = [
        "sonorisk reader study export (ratings: " + rating + ")",
        f"NR: {len(readers)}",
        f"N0: {int((y == 0).sum())}",
        f"N1: {int((y == 1).sum())}",
        f"NM: {len(modalities)}",
        "BEGIN DATA:",
    ]
    lines += [f"-1,{case},truth,{int(label)}" for case, label in zip(cases, y, strict=True)]
    for i, mod in enumerate(modalities):
        for j, rd in enumerate(readers):
            lines += [f"{rd},{case},{mod},{cube[i, j, k]:g}" for k, case in enumerate(cases)]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out
