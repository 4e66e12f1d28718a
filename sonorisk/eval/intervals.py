"""Point estimates with confidence intervals, and the interval formulas.

An :class:`Estimate` always says how its interval was computed (``method``) and,
when a value is undefined (0/0, a degenerate interval), carries the reason in
``undefined`` instead of a NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """A statistic with its confidence interval.

    ``estimate``/``ci_low``/``ci_high`` are None when undefined; ``undefined``
    then says why. ``method`` names the interval ("Clopper-Pearson exact", ...).
    """

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    method: str
    level: float = 0.95
    undefined: str | None = None

    @property
    def defined(self) -> bool:
        return self.estimate is not None

    @classmethod
    def missing(cls, reason: str, method: str = "n/a") -> Estimate:
        return cls(None, None, None, method, undefined=reason)


@dataclass(frozen=True)
class TestResult:
    """A hypothesis test: statistic, p-value and the test's name."""

    statistic: float | None
    p_value: float | None
    method: str
    df: float | None = None
    estimate: float | None = None  # e.g. the difference tested, when there is one
    ci_low: float | None = None
    ci_high: float | None = None
    undefined: str | None = None

    __test__ = False  # not a pytest test class despite the name


def z_value(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return float(stats.norm.ppf(0.5 + level / 2.0))


def clopper_pearson(successes: int, total: int, level: float = 0.95) -> Estimate:
    """Exact binomial interval (Clopper & Pearson 1934), as MedCalc/SPSS print it."""
    method = "Clopper-Pearson exact"
    if total <= 0:
        return Estimate.missing("no cases in the denominator (0/0)", method)
    if not 0 <= successes <= total:
        raise ValueError(f"successes {successes} outside 0..{total}")
    alpha = 1.0 - level
    low = (
        0.0
        if successes == 0
        else float(stats.beta.ppf(alpha / 2, successes, total - successes + 1))
    )
    high = (
        1.0
        if successes == total
        else float(stats.beta.ppf(1 - alpha / 2, successes + 1, total - successes))
    )
    return Estimate(successes / total, low, high, method, level)


def logit_predictive_value(
    true_calls: int, false_calls: int, n_same: int, n_other: int, level: float = 0.95
) -> Estimate:
    """Logit interval for PPV or NPV (Mercaldo, Lau & Zhou 2007, "standard logit").

    For PPV: true_calls=TP, false_calls=FP, n_same=#diseased, n_other=#non-diseased.
    For NPV: true_calls=TN, false_calls=FN, n_same=#non-diseased, n_other=#diseased.
    With the sample prevalence, Var(logit PPV) = (1-sens)/(n1 sens) + spec/(n0 (1-spec)),
    which is 1/TP - 1/n1 + 1/FP - 1/n0; this is the interval MedCalc prints.
    When the value is 0% or 100% the logit is infinite; we then fall back to the
    Clopper-Pearson interval on true_calls/(true_calls+false_calls) and say so.
    """
    total = true_calls + false_calls
    method = "logit (Mercaldo et al. 2007)"
    if total == 0:
        return Estimate.missing("no positive calls (0/0)" if n_same >= 0 else "0/0", method)
    value = true_calls / total
    if true_calls == 0 or false_calls == 0:
        cp = clopper_pearson(true_calls, total, level)
        return Estimate(
            value,
            cp.ci_low,
            cp.ci_high,
            "Clopper-Pearson exact (logit interval undefined at 0% or 100%)",
            level,
        )
    var = 1.0 / true_calls - 1.0 / n_same + 1.0 / false_calls - 1.0 / n_other
    if var <= 1e-15:
        # Every case called the same way (sensitivity 100% and specificity 0%, or the
        # reverse): the logit variance is zero, which would print a zero-width interval.
        cp = clopper_pearson(true_calls, total, level)
        return Estimate(
            value,
            cp.ci_low,
            cp.ci_high,
            "Clopper-Pearson exact (logit variance zero: every case called alike)",
            level,
        )
    centre = math.log(value / (1.0 - value))
    half = z_value(level) * math.sqrt(var)
    low = 1.0 / (1.0 + math.exp(-(centre - half)))
    high = 1.0 / (1.0 + math.exp(-(centre + half)))
    return Estimate(value, low, high, method, level)


def normal_interval(
    estimate: float,
    se: float,
    level: float,
    method: str,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> Estimate:
    """estimate +- z*se, clipped to ``bounds`` (as pROC clips AUC CIs to [0, 1])."""
    half = z_value(level) * se
    low, high = estimate - half, estimate + half
    if bounds is not None:
        low, high = max(bounds[0], low), min(bounds[1], high)
    return Estimate(estimate, low, high, method, level)
