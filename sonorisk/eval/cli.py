"""Verbs of sonorisk.eval: ``sonorisk eval report``."""

from __future__ import annotations

import argparse


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    p = groups["eval"].add_parser(
        "report",
        help="statistics report (tables + figures) from a scores table",
        description="Metrics with CIs, model and reader comparisons, agreement and figures from "
        "PREDICTIONS (CSV/Parquet: id + one score column per model, or id, model, "
        "score) and a truth table. See docs/evaluation.md for the formats.",
    )
    p.add_argument("predictions", help="scores table (CSV or Parquet)")
    p.add_argument("--truth", required=True, help="truth table: id, truth, optional covariates")
    p.add_argument("--reads", help="reader table: reader, case_id, session, birads, ...")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--reference-model", help="model the others are compared to (default: first)")
    op = p.add_mutually_exclusive_group()
    op.add_argument("--threshold", type=float, help="fixed operating threshold")
    op.add_argument("--target-sensitivity", type=float, help="threshold reaching this sensitivity")
    op.add_argument("--target-specificity", type=float, help="threshold reaching this specificity")
    p.add_argument(
        "--subgroup",
        action="append",
        metavar="COLUMN[:CUT]",
        help="subgroup covariate (repeatable); default: site, age, lesion_size_mm, "
        "birads when present",
    )
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument(
        "--kappa-weights", choices=("unweighted", "linear", "quadratic"), default="unweighted"
    )
    p.add_argument("--mrmc-covariance", choices=("delong", "jackknife"), default="delong")
    p.add_argument(
        "--mrmc-rating",
        choices=("birads", "confidence"),
        default="birads",
        help="reader rating used for MRMC AUCs",
    )
    p.add_argument("--note", help="provenance note printed on every report (e.g. 'synthetic demo')")
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sonorisk.errors import ConfigError
    from sonorisk.eval.report import ReportConfig, build_report
    from sonorisk.eval.tables import load_predictions, load_reads, load_truth

    if args.bootstrap < 1:
        raise ConfigError("--bootstrap", f"must be >= 1, got {args.bootstrap}")
    if not 0.5 <= args.level < 1.0:
        raise ConfigError("--level", f"must be in [0.5, 1), got {args.level}")
    for flag in ("target_sensitivity", "target_specificity"):
        value = getattr(args, flag)
        if value is not None and not 0.0 <= value <= 1.0:
            raise ConfigError(f"--{flag.replace('_', '-')}", f"must be in [0, 1], got {value}")
    truth = load_truth(args.truth)
    predictions = load_predictions(args.predictions, truth)
    reads = load_reads(args.reads, truth) if args.reads else None
    if reads is not None and args.mrmc_rating == "confidence" and "confidence" not in reads.columns:
        raise ConfigError("--mrmc-rating", "reads table has no 'confidence' column")
    inputs = {"predictions": args.predictions, "truth": args.truth}
    if args.reads:
        inputs["reads"] = args.reads
    cfg = ReportConfig(
        level=args.level,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        threshold=args.threshold,
        target_sensitivity=args.target_sensitivity,
        target_specificity=args.target_specificity,
        reference_model=args.reference_model,
        subgroups=tuple(args.subgroup) if args.subgroup else None,
        kappa_weights=args.kappa_weights,
        mrmc_covariance=args.mrmc_covariance,
        mrmc_rating="birads_code" if args.mrmc_rating == "birads" else "confidence",
        note=args.note,
        inputs=inputs,
    )
    result = build_report(truth, predictions, reads, Path(args.out), cfg)
    print(
        f"report written to {result.out_dir / 'report.md'} "
        f"({len(result.tables)} tables, {len(result.figures)} figures)"
    )
    for w in result.warnings:
        print(f"note: {w}")
    return 0
