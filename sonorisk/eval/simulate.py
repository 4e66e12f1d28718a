"""Simulated evaluation tables (binormal scores, latent-variable readers).

For tests, examples and documentation only: every table made here is marked
synthetic (the predictions carry a ``note`` column saying so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sonorisk.eval.birads import BIRADS_SCALE

SUBTYPES = ["IDC", "fibroadenoma", "inflammatory", "mucinous"]
SYNTHETIC_NOTE = "synthetic: simulated scores, not a clinical result"


@dataclass(frozen=True)
class SimulatedStudy:
    truth: pd.DataFrame  # id, truth, site, age, lesion_size_mm, birads
    predictions: pd.DataFrame  # wide: id, one column per model, note
    reads: pd.DataFrame  # reader, case_id, session, birads, confidence, reading_time_s


def simulate_study(
    n_malignant: int = 115,
    n_benign: int = 75,
    model_separations: dict[str, float] | None = None,
    n_readers: int = 4,
    reader_separation: float = 1.6,
    aid_gain: float = 0.5,
    seed: int = 0,
    with_subtypes: bool = True,
) -> SimulatedStudy:
    """A WAUVE-shaped study: two sites, covariates, models and 4 readers in two sessions.

    Readers see a latent value (case difficulty shared by all readers plus their own
    noise); aided reads pull the latent value toward the first model's score.
    """
    rng = np.random.default_rng(seed)
    seps = model_separations or {"WAUVE": 1.8, "TimeSformer": 1.7, "ResNet50-2D": 1.2}
    n = n_malignant + n_benign
    y = np.r_[np.ones(n_malignant, dtype=int), np.zeros(n_benign, dtype=int)]
    ids = [f"case{i:04d}" for i in range(n)]
    case_effect = rng.normal(size=n)  # shared difficulty: makes models and readers correlated
    truth = pd.DataFrame(
        {
            "id": ids,
            "truth": np.where(y == 1, "malignant", "benign"),
            "site": rng.choice(["PUMCH", "NCC"], size=n),
            "age": np.round(rng.normal(np.where(y == 1, 55, 45), 10)).astype(int),
            "lesion_size_mm": np.round(rng.gamma(4.0, np.where(y == 1, 5.0, 3.5)), 1),
        }
    )
    preds = {"id": ids}
    latent_model = {}
    for name, sep in seps.items():
        z = sep * y + 0.7 * case_effect + rng.normal(scale=0.7, size=n)
        latent_model[name] = z
        preds[name] = 1.0 / (1.0 + np.exp(-(z - sep / 2) * 1.5))
    predictions = pd.DataFrame(preds)
    if with_subtypes:
        # Four classes as in Li et al. (PLOS ONE 2025); a subtype head scores each class.
        subtype = np.where(
            y == 1,
            np.where(rng.random(n) < 0.8, "IDC", "mucinous"),
            np.where(rng.random(n) < 0.7, "fibroadenoma", "inflammatory"),
        )
        truth["subtype"] = subtype
        logits = rng.normal(size=(n, len(SUBTYPES)))
        logits[np.arange(n), [SUBTYPES.index(c) for c in subtype]] += 1.5
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        for j, cls in enumerate(SUBTYPES):
            predictions[f"subtype:{cls}"] = probs[:, j]
    predictions["note"] = SYNTHETIC_NOTE
    first = next(iter(latent_model.values()))
    # BI-RADS cuts on the latent scale: more malignant -> higher category.
    cuts = np.array([-0.6, 0.5, 1.1, 1.6, 2.2])
    cats = BIRADS_SCALE[1:7]  # 2, 3, 4A, 4B, 4C, 5: a diagnostic study has no category 6
    clinical = reader_separation * y + 0.7 * case_effect + rng.normal(scale=0.5, size=n)
    truth["birads"] = [cats[int(np.searchsorted(cuts, v))] for v in clinical]
    rows = []
    for r in range(n_readers):
        bias = rng.normal(scale=0.25)
        noise_u = rng.normal(scale=0.6, size=n)
        base = reader_separation * y + 0.7 * case_effect + noise_u + bias
        aided = (
            (1 - aid_gain) * base
            + aid_gain * (first - seps[next(iter(seps))] / 2 + 0.8)
            + rng.normal(scale=0.2, size=n)
        )
        t_unaided = rng.gamma(2.0, 10.0, size=n) - 5.0
        for session, latent, times in (
            ("unaided", base, t_unaided),
            ("aided", aided, t_unaided * 0.9 + rng.normal(size=n)),
        ):
            for i in range(n):
                rows.append(
                    {
                        "reader": f"R{r + 1}",
                        "case_id": ids[i],
                        "session": session,
                        "birads": cats[int(np.searchsorted(cuts, latent[i]))],
                        "confidence": float(np.clip(50 + 25 * latent[i], 0, 100).round(1)),
                        "reading_time_s": float(np.round(times[i], 2)),
                    }
                )
    return SimulatedStudy(truth, predictions, pd.DataFrame(rows))
