"""What the sections of ``sonorisk eval report`` share: its settings, the
context every section reads and adds its tables and figures to, the warnings
about its inputs, and the cell formats of its tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sonorisk.errors import ConfigError
from sonorisk.eval.binary import BinaryMetrics
from sonorisk.eval.errors import EvalInputError
from sonorisk.eval.formatting import Table, fmt_estimate, fmt_p
from sonorisk.eval.intervals import Estimate, TestResult
from sonorisk.eval.operating_points import OperatingPoint
from sonorisk.eval.roc import RocCurve
from sonorisk.eval.tables import Predictions

SYNTHETIC_WORDS = ("synthetic", "demo", "simulated", "simulation", "toy", "untrained")
METRICS = ("sensitivity", "specificity", "ppv", "npv", "accuracy")
_METRIC_NAMES = {
    "sensitivity": "Sens",
    "specificity": "Spec",
    "ppv": "PPV",
    "npv": "NPV",
    "accuracy": "Acc",
}


@dataclass(frozen=True)
class ReportConfig:
    """Settings of ``sonorisk eval report``; each key is also a flag (``--kappa-weights``)."""

    level: float = 0.95
    n_bootstrap: int = 2000
    seed: int = 0
    threshold: float | None = None
    target_sensitivity: float | None = None
    target_specificity: float | None = None
    reference_model: str | None = None
    subgroups: tuple[str, ...] | None = None  # "column" or "column:cut"; None: standard
    kappa_weights: str = "unweighted"  # unweighted | linear | quadratic
    mrmc_covariance: str = "delong"  # delong | jackknife
    mrmc_rating: str = "birads"  # birads | confidence
    calibration_bins: int = 10
    note: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)  # names of the input files, for the header

    def __post_init__(self) -> None:
        def bad(key: str, reason: str) -> ConfigError:
            return ConfigError(f"eval report config: {key}", reason)

        if not 0.5 <= self.level < 1.0:
            raise bad("level", f"must be in [0.5, 1), got {self.level}")
        if self.n_bootstrap < 1:
            raise bad("n_bootstrap", f"must be >= 1, got {self.n_bootstrap}")
        if self.calibration_bins < 2:
            raise bad("calibration_bins", f"must be >= 2, got {self.calibration_bins}")
        rules = [k for k in ("threshold", "target_sensitivity", "target_specificity")
                 if getattr(self, k) is not None]  # fmt: skip
        if len(rules) > 1:
            raise bad(rules[1], f"give one operating-point rule, not {rules}")
        for key in ("target_sensitivity", "target_specificity"):
            value = getattr(self, key)
            if value is not None and not 0.0 <= value <= 1.0:
                raise bad(key, f"must be in [0, 1], got {value}")
        for key, allowed in (("kappa_weights", ("unweighted", "linear", "quadratic")),
                             ("mrmc_covariance", ("delong", "jackknife")),
                             ("mrmc_rating", ("birads", "confidence"))):  # fmt: skip
            if getattr(self, key) not in allowed:
                raise bad(key, f"must be one of {list(allowed)}, got {getattr(self, key)!r}")

    @property
    def mrmc_rating_column(self) -> str:
        return "birads_code" if self.mrmc_rating == "birads" else "confidence"


@dataclass
class ReportResult:
    out_dir: Path
    tables: dict[str, Table]
    figures: dict[str, Path]
    operating_point: OperatingPoint
    warnings: list[str]


def ci_note(level: float) -> str:
    return f"{level_pct(level)} confidence intervals"


def metric_label(metric: str, level: float) -> str:
    """Column header such as "Sens % (95% CI)" at the report's confidence level."""
    return f"{_METRIC_NAMES[metric]} % ({level_pct(level)} CI)"


def level_pct(level: float) -> str:
    return f"{level * 100:g}%"


def p_eq(p: str) -> str:
    """ "=0.012" or "<0.001": so a cell reads "p<0.001", not "p=<0.001"."""
    return p if p.startswith("<") else f"={p}"


def p_tail(test: TestResult) -> str:
    return p_eq(fmt_p(test))


def counts_cell(m: BinaryMetrics) -> str:
    c = m.counts
    return f"TP {c.tp} FN {c.fn} TN {c.tn} FP {c.fp}"


def metric_cells(m: BinaryMetrics) -> list[str]:
    return [fmt_estimate(getattr(m, k), percent=True) for k in METRICS]


def synthetic_warnings(predictions: Predictions, cfg: ReportConfig) -> list[str]:
    """One line per distinct provenance note; synthetic/demo sources are flagged loudly."""
    out = []
    if cfg.note:
        flag = any(w in cfg.note.lower() for w in SYNTHETIC_WORDS)
        prefix = "SYNTHETIC/DEMO SCORES — not a clinical result. " if flag else ""
        out.append(f"{prefix}Note given with --note: {cfg.note}")
    by_note: dict[str, list[str]] = {}
    for model, note in predictions.notes.items():
        by_note.setdefault(note, []).append(model)
    for note, names in by_note.items():
        flag = any(w in note.lower() for w in SYNTHETIC_WORDS)
        prefix = "SYNTHETIC/DEMO SCORES — not a clinical result. " if flag else ""
        label = "Model" if len(names) == 1 else "Models"
        out.append(f"{prefix}{label} {', '.join(repr(n) for n in names)}: {note}")
    return out


NOT_PROBABILITIES = "SCORES NOT PROBABILITIES"


def score_range_warnings(scores: dict[str, np.ndarray]) -> list[str]:
    """A loud line per model whose scores leave [0, 1] (logits, ranks, decision values).

    Ranks, AUC and thresholds do not need probabilities, but a calibration plot
    of such scores would compare them with a fraction malignant and mean nothing.
    """
    out = []
    for model, s in scores.items():
        low, high = float(np.min(s)), float(np.max(s))
        if low < 0.0 or high > 1.0:
            out.append(
                f"{NOT_PROBABILITIES} — model {model!r} has scores from {low:.4g} to {high:.4g}, "
                "outside [0, 1]: it is left out of the calibration plot. AUC, tests and "
                "operating points hold for any score; thresholds are in its own score units."
            )
    return out


@dataclass
class ReportContext:
    """The inputs every section reads, and the tables and figures they add.

    Sections run in order (``report.SECTIONS``) and add to ``tables`` and
    ``figs``; their order is the report's. A section that computes what a later
    one needs stores it here (the operating point, the reference's ROC curve
    and AUC) instead of passing it along as a parameter.
    """

    truth: pd.DataFrame
    predictions: Predictions
    reads: pd.DataFrame | None
    out_dir: Path
    cfg: ReportConfig
    y: np.ndarray
    models: list[str]  # the reference first: it leads every table
    scores: dict[str, np.ndarray]
    provenance: list[str]
    range_warnings: list[str]
    fig_note: str | None
    tables: dict[str, Table] = field(default_factory=dict)
    figs: dict[str, Path] = field(default_factory=dict)
    # Set by the sections that compute them (operating points, AUC, model figures).
    op: OperatingPoint | None = None
    aucs_delong: dict[str, Estimate] = field(default_factory=dict)
    curves: dict[str, RocCurve] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        truth: pd.DataFrame,
        predictions: Predictions,
        reads: pd.DataFrame | None,
        out_dir: Path,
        cfg: ReportConfig,
    ) -> ReportContext:
        out_dir = Path(out_dir)
        (out_dir / "tables").mkdir(parents=True, exist_ok=True)
        (out_dir / "figures").mkdir(parents=True, exist_ok=True)
        models = predictions.models
        ref = cfg.reference_model or models[0]
        if ref not in models:
            raise EvalInputError("--reference-model", f"{ref!r} is not one of the models {models}")
        models = [ref, *[m for m in models if m != ref]]  # the reference leads every table
        scores = {m: predictions.scores[m].to_numpy() for m in models}
        provenance = synthetic_warnings(predictions, cfg)
        fig_note = (
            "Synthetic/demo scores: not a clinical result"
            if any(w.startswith("SYNTHETIC") for w in provenance) or cfg.note
            else None
        )
        return cls(
            truth,
            predictions,
            reads,
            out_dir,
            cfg,
            truth["truth"].to_numpy().astype(int),
            models,
            scores,
            provenance,
            score_range_warnings(scores),
            fig_note,
        )

    @property
    def ref(self) -> str:
        return self.models[0]

    @property
    def ci(self) -> str:
        return ci_note(self.cfg.level)

    @property
    def point(self) -> OperatingPoint:
        """The reference's operating point (after the operating-point section)."""
        if self.op is None:
            raise RuntimeError("the operating-point section has not run")
        return self.op
