"""Choosing the lesion rules on development runs (sonorisk.eval.lesion_rules)."""

from __future__ import annotations

import numpy as np
import pytest

from sonorisk.eval.lesion_rules import DevLesion, DevVideo, choose, fit_confidence
from sonorisk.pipeline.lesions import LesionEvidence, confidence_of


def _development(seed: int = 0) -> list[DevVideo]:
    """Lesion sweeps whose one true lesion the detector scores high, with now and
    then a short false track; lesion-free sweeps whose false tracks last the whole
    sweep (what synthetic sweeps of a still give): so length argues *against* a
    lesion here, as in sonorisk-busi 1.2.0's development runs."""
    rng = np.random.default_rng(seed)
    videos = []
    for i in range(60):
        malignant = i % 3 == 0
        risk = float(np.clip(rng.normal(0.75 if malignant else 0.3, 0.15), 0.01, 0.99))
        true = DevLesion(
            LesionEvidence(float(rng.uniform(0.55, 0.99)), int(rng.integers(10, 40)), 0.8),
            True,
            risk,
            (risk, risk),
        )
        lesions = [true]
        if i % 4 == 0:
            lesions.append(
                DevLesion(
                    LesionEvidence(float(rng.uniform(0.3, 0.7)), int(rng.integers(5, 15)), 0.4),
                    False,
                    0.5,
                    (0.5,),
                )
            )
        videos.append(DevVideo(f"l{i}", "malignant" if malignant else "benign", tuple(lesions)))
    for i in range(30):
        false = DevLesion(
            LesionEvidence(float(rng.uniform(0.3, 0.75)), 48, 0.5), False, 0.6, (0.6,)
        )
        videos.append(DevVideo(f"n{i}", "normal", (false,)))
    return videos


def test_the_fit_is_monotone_unless_told_otherwise() -> None:
    videos = _development()
    free = fit_confidence(videos, monotone=False)
    assert free.frames < 0 < free.detector  # the synthetic trait, fitted as it is
    model = fit_confidence(videos)
    assert model.frames == 0.0 and model.detector > 0 and model.check >= 0
    assert model.max_frames == 48
    # More of any evidence never lowers the monotone model's confidence.
    base = LesionEvidence(0.7, 10, 0.6)
    for more in (LesionEvidence(0.8, 10, 0.6), LesionEvidence(0.7, 40, 0.6),
                 LesionEvidence(0.7, 10, 0.9)):  # fmt: skip
        assert confidence_of(more, model) >= confidence_of(base, model)
    # ... while the free fit lets a longer track lose confidence.
    assert confidence_of(LesionEvidence(0.7, 40, 0.6), free) < confidence_of(base, free)


def test_choose_picks_the_threshold_that_gives_one_lesion_and_no_false_one() -> None:
    videos = _development()
    chosen, table = choose(videos, fit_confidence(videos))
    best = chosen["development"]
    objective = [r["exactly_one"] - r["scored_per_lesion_free_sweep"] for r in table]
    assert best["exactly_one"] - best["scored_per_lesion_free_sweep"] == pytest.approx(
        max(objective)
    )
    # At threshold 0.05 nearly everything is scored: false lesions on lesion-free sweeps.
    assert table[0]["scored_per_lesion_free_sweep"] > best["scored_per_lesion_free_sweep"]
    assert chosen["risk_rule"] == "most_confident_lesion"  # ties go to the safe rule
    assert chosen["development"][f"auc_{chosen['risk_rule']}"] > 0.9
