"""Seeded bootstrap: resample cases (stratified by truth) and take percentiles.

Every interval made here says its resample count and seed, so a report can be
re-run to the same digits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sonorisk.eval.intervals import Estimate


def stratified_indices(y: np.ndarray, n_resamples: int, seed: int | tuple[int, ...]) -> np.ndarray:
    """(n_resamples, n) indices; each row keeps the numbers of malignant and benign cases.

    ``seed`` may be a tuple (seed, chunk start) so chunked callers stay reproducible.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    parts = []
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        parts.append(members[rng.integers(0, len(members), size=(n_resamples, len(members)))])
    return np.concatenate(parts, axis=1)


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float | None],
    y: np.ndarray,
    estimate: float,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    stratified: bool = True,
) -> Estimate:
    """Percentile CI of ``statistic(indices)`` over case resamples.

    ``statistic`` receives an index array into the caller's case arrays and returns
    a float, or None when undefined on that resample (skipped and counted).
    """
    if stratified:
        idx = stratified_indices(y, n_resamples, seed)
    else:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(y), size=(n_resamples, len(y)))
    values = [v for v in (statistic(row) for row in idx) if v is not None]
    method = (
        f"{'stratified ' if stratified else ''}bootstrap percentile, "
        f"{n_resamples} resamples, seed {seed}"
    )
    if len(values) < max(10, n_resamples // 2):
        return Estimate(
            estimate,
            None,
            None,
            method,
            level,
            undefined=f"statistic undefined on {n_resamples - len(values)} resamples",
        )
    alpha = 1.0 - level
    low, high = np.quantile(np.asarray(values, dtype=float), [alpha / 2, 1 - alpha / 2])
    skipped = n_resamples - len(values)
    if skipped:
        method += f" ({skipped} resamples undefined, skipped)"
    return Estimate(estimate, float(low), float(high), method, level)
