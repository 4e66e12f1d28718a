"""sonorisk.eval: metrics with confidence intervals, tests between models and readers,
agreement, reader-study analysis, MRMC and reports, all on plain tables of scores.

Every metric returns a small frozen dataclass (:class:`Estimate` or :class:`TestResult`)
that names how its interval or p-value was computed. See docs/evaluation.md.
"""

from __future__ import annotations

from sonorisk.lazy import lazy_exports

# Names resolve on first use, so `import sonorisk.eval` (and `sonorisk --help`, which
# imports sonorisk.eval.cli) stays free of scipy/pandas/matplotlib import time.
_EXPORTS: dict[str, str] = {
    "BIRADS_SCALE": "sonorisk.eval.birads",
    "BinaryMetrics": "sonorisk.eval.binary",
    "ConfusionCounts": "sonorisk.eval.binary",
    "Estimate": "sonorisk.eval.intervals",
    "OperatingPoint": "sonorisk.eval.operating_points",
    "TestResult": "sonorisk.eval.intervals",
    "auc": "sonorisk.eval.roc",
    "auc_bootstrap_ci": "sonorisk.eval.roc",
    "auc_delong_ci": "sonorisk.eval.roc",
    "binary_metrics": "sonorisk.eval.binary",
    "birads_codes": "sonorisk.eval.birads",
    "birads_to_binary": "sonorisk.eval.birads",
    "chi_square_2x2": "sonorisk.eval.comparisons",
    "clopper_pearson": "sonorisk.eval.intervals",
    "cohen_kappa": "sonorisk.eval.agreement",
    "compare_paired_binary": "sonorisk.eval.comparisons",
    "compare_predictive_values": "sonorisk.eval.comparisons",
    "compare_proportions": "sonorisk.eval.comparisons",
    "confusion_counts": "sonorisk.eval.binary",
    "delong": "sonorisk.eval.roc",
    "delong_test_paired": "sonorisk.eval.roc",
    "delong_test_unpaired": "sonorisk.eval.roc",
    "fixed_threshold": "sonorisk.eval.operating_points",
    "fleiss_kappa": "sonorisk.eval.agreement",
    "icc": "sonorisk.eval.agreement",
    "kappa_matrix": "sonorisk.eval.agreement",
    "logit_predictive_value": "sonorisk.eval.intervals",
    "mcnemar": "sonorisk.eval.comparisons",
    "metrics_from_counts": "sonorisk.eval.binary",
    "multiclass_confusion": "sonorisk.eval.binary",
    "obuchowski_rockette": "sonorisk.eval.mrmc",
    "one_vs_rest_auc": "sonorisk.eval.roc",
    "roc_curve": "sonorisk.eval.roc",
    "t_test": "sonorisk.eval.comparisons",
    "threshold_for_sensitivity": "sonorisk.eval.operating_points",
    "threshold_for_specificity": "sonorisk.eval.operating_points",
    "wilcoxon_rank_sum": "sonorisk.eval.comparisons",
    "write_imrmc": "sonorisk.eval.mrmc",
    "youden_threshold": "sonorisk.eval.operating_points",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
