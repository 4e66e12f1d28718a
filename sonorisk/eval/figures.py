"""Report figures (matplotlib, Agg backend): ROC curves (Fig. 3), model ROC with reader
operating points and bootstrap 95% CI error bars (Fig. 4), calibration, kappa matrix (Fig. 5)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are written on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sonorisk.eval.formatting import fmt_estimate  # noqa: E402
from sonorisk.eval.intervals import Estimate  # noqa: E402
from sonorisk.eval.roc import RocCurve  # noqa: E402


@dataclass(frozen=True)
class ReaderPoint:
    label: str
    fpr: float
    tpr: float
    session: str  # "unaided" or "aided"


@dataclass(frozen=True)
class MeanReaderPoint:
    session: str
    fpr: Estimate  # 1 - specificity, with bootstrap CI
    tpr: Estimate  # sensitivity, with bootstrap CI


SESSION_COLOURS = {"unaided": "#2ca02c", "aided": "#9467bd"}  # green / purple as in Fig. 4


def _finish(fig: plt.Figure, path: Path, note: str | None) -> Path:
    if note:
        fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=7, color="#b00000")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _roc_axes(ax: plt.Axes) -> None:
    ax.plot([0, 1], [0, 1], ls="--", color="#999999", lw=0.8)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("Sensitivity")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)


def plot_model_rocs(
    curves: Mapping[str, tuple[RocCurve, Estimate]],
    path: Path,
    title: str = "ROC curves",
    note: str | None = None,
) -> Path:
    fig, ax = plt.subplots(figsize=(6, 6))
    for name, (curve, auc_est) in curves.items():
        ax.plot(curve.fpr, curve.tpr, lw=1.6, label=f"{name}: AUC {fmt_estimate(auc_est)}")
    _roc_axes(ax)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _finish(fig, path, note)


def plot_reader_roc(
    model_name: str,
    curve: RocCurve,
    auc_est: Estimate,
    operating_point: tuple[float, float] | None,
    readers: Sequence[ReaderPoint],
    means: Sequence[MeanReaderPoint],
    path: Path,
    ci_method: str = "",
    note: str | None = None,
    level_label: str = "95%",
) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 6.4))
    ax.plot(
        curve.fpr,
        curve.tpr,
        color="#1f77b4",
        lw=1.8,
        label=f"{model_name}: AUC {fmt_estimate(auc_est)}",
    )
    if operating_point is not None:
        ax.plot(
            *operating_point,
            marker="*",
            ms=13,
            color="#d62728",
            ls="none",
            label=f"{model_name} operating point",
        )
    markers = "osD^vP<>Xh"
    names = sorted({r.label for r in readers})
    for pt in readers:
        ax.plot(
            pt.fpr,
            pt.tpr,
            marker=markers[names.index(pt.label) % len(markers)],
            ms=6,
            color=SESSION_COLOURS.get(pt.session, "k"),
            ls="none",
            alpha=0.85,
            label=f"{pt.label} ({pt.session})",
        )
    for m in means:
        if m.fpr.estimate is not None and m.tpr.estimate is not None:  # both defined
            xerr = (
                None
                if m.fpr.ci_low is None or m.fpr.ci_high is None
                else [[m.fpr.estimate - m.fpr.ci_low], [m.fpr.ci_high - m.fpr.estimate]]
            )
            yerr = (
                None
                if m.tpr.ci_low is None or m.tpr.ci_high is None
                else [[m.tpr.estimate - m.tpr.ci_low], [m.tpr.ci_high - m.tpr.estimate]]
            )
            ax.errorbar(
                m.fpr.estimate,
                m.tpr.estimate,
                xerr=xerr,
                yerr=yerr,
                fmt="o",
                ms=8,
                mfc="white",
                color=SESSION_COLOURS.get(m.session, "k"),
                capsize=4,
                lw=1.5,
                label=f"reader mean ({m.session}), {level_label} CI",
            )
    _roc_axes(ax)
    ax.set_title(f"{model_name} against readers")
    ax.legend(loc="lower right", fontsize=7, ncol=2)
    if ci_method:
        ax.text(
            0.98,
            0.35,
            f"error bars: {ci_method}",
            transform=ax.transAxes,
            fontsize=6,
            ha="right",
            color="#555555",
        )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _finish(fig, path, note)


def calibration_bins(
    y: np.ndarray, scores: np.ndarray, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantile bins: mean score, observed malignant fraction and count per bin."""
    order = np.argsort(scores, kind="mergesort")
    groups = [g for g in np.array_split(order, min(n_bins, len(scores))) if len(g)]
    mean_score = np.array([scores[g].mean() for g in groups])
    observed = np.array([y[g].mean() for g in groups])
    counts = np.array([len(g) for g in groups])
    return mean_score, observed, counts


def plot_calibration(
    y: np.ndarray,
    scores: Mapping[str, np.ndarray],
    path: Path,
    n_bins: int = 10,
    note: str | None = None,
) -> Path:
    fig, ax = plt.subplots(figsize=(6, 6))
    for name, s in scores.items():
        ms, obs, _ = calibration_bins(y, s, n_bins)
        ax.plot(ms, obs, marker="o", lw=1.3, label=name)
    ax.plot([0, 1], [0, 1], ls="--", color="#999999", lw=0.8, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Mean score in bin")
    ax.set_ylabel("Observed fraction malignant")
    ax.set_title(f"Calibration ({n_bins} quantile bins)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _finish(fig, path, note)


def plot_kappa_matrices(
    matrices: Mapping[str, tuple[list[str], np.ndarray]], path: Path, note: str | None = None
) -> Path:
    """One heatmap per session: readers x readers kappa, the value written in each cell."""
    n = len(matrices)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n + 0.8, 4.4), squeeze=False)
    image = None
    for ax, (title, (labels, mat)) in zip(axes[0], matrices.items(), strict=True):
        shown = np.where(np.isnan(mat), 0.0, mat)
        image = ax.imshow(shown, vmin=0, vmax=1, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        for i in range(len(labels)):
            for j in range(len(labels)):
                text = "n/a" if np.isnan(mat[i, j]) else f"{mat[i, j]:.2f}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if shown[i, j] > 0.6 else "black",
                )
        ax.set_title(title)
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="Cohen's kappa")
    return _finish(fig, path, note)
