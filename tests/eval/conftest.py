"""Fixtures for sonorisk.eval tests: simulated studies written as the CLI's input tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sonorisk.eval.simulate import SimulatedStudy, simulate_study
from sonorisk.eval.tables import load_predictions, load_reads, load_truth


@pytest.fixture(scope="session")
def study() -> SimulatedStudy:
    """WAUVE-shaped: 115 malignant, 75 benign, 3 models, 4 readers, two sessions."""
    return simulate_study(seed=7)


@pytest.fixture(scope="session")
def loaded(study):
    truth = load_truth(study.truth)
    return truth, load_predictions(study.predictions, truth), load_reads(study.reads, truth)


@dataclass(frozen=True)
class StudyFiles:
    truth: Path
    predictions: Path
    reads: Path


@pytest.fixture(scope="session")
def study_files(study, tmp_path_factory) -> StudyFiles:
    d = tmp_path_factory.mktemp("eval_inputs")
    files = StudyFiles(d / "truth.csv", d / "predictions.csv", d / "reads.csv")
    study.truth.to_csv(files.truth, index=False)
    study.predictions.to_csv(files.predictions, index=False)
    study.reads.to_csv(files.reads, index=False)
    return files


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def binormal(
    rng: np.random.Generator, n_pos: int, n_neg: int, sep: float = 1.0, ties: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    y = np.r_[np.ones(n_pos, dtype=int), np.zeros(n_neg, dtype=int)]
    s = rng.normal(size=n_pos + n_neg) + sep * y
    if ties:
        s = np.round(s)  # a 5-to-7-point rating scale: many ties
    return y, s
