"""Verbs of sonorisk.eval: ``sonorisk eval report``."""

from __future__ import annotations

import argparse

from sonorisk.cli_args import finite_float


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    p = groups["eval"].add_parser(
        "report",
        help="statistics report (tables + figures) from a scores table",
        description="Metrics with CIs, model and reader comparisons, agreement and figures from "
        "PREDICTIONS (CSV/Parquet: id + one score column per model, or id, model, "
        "score) and a truth table. See docs/evaluation.md for the formats. Flags override "
        "the keys of --config (a YAML file of ReportConfig keys).",
    )
    p.add_argument("predictions", help="scores table (CSV or Parquet)")
    p.add_argument("--truth", required=True, help="truth table: id, truth, optional covariates")
    p.add_argument("--reads", help="reader table: reader, case_id, session, birads, ...")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--config", help="YAML file of report settings (keys of ReportConfig)")
    p.add_argument("--reference-model", help="model the others are compared to (default: first)")
    op = p.add_mutually_exclusive_group()
    op.add_argument("--threshold", type=finite_float, help="fixed operating threshold")
    op.add_argument(
        "--target-sensitivity", type=finite_float, help="threshold reaching this sensitivity"
    )
    op.add_argument(
        "--target-specificity", type=finite_float, help="threshold reaching this specificity"
    )
    p.add_argument(
        "--subgroup",
        action="append",
        metavar="COLUMN[:CUT]",
        help="subgroup covariate (repeatable); default: site, age, lesion_size_mm, "
        "birads when present",
    )
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, help="bootstrap seed (default 0)")
    p.add_argument("--level", type=finite_float, help="confidence level (default 0.95)")
    p.add_argument("--kappa-weights", choices=("unweighted", "linear", "quadratic"))
    p.add_argument("--mrmc-covariance", choices=("delong", "jackknife"))
    p.add_argument(
        "--mrmc-rating", choices=("birads", "confidence"), help="reader rating for MRMC AUCs"
    )
    p.add_argument("--note", help="provenance note printed on every report (e.g. 'synthetic demo')")
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sonorisk.config import from_dict, load_yaml
    from sonorisk.errors import ConfigError
    from sonorisk.eval.report import ReportConfig, build_report
    from sonorisk.eval.tables import load_predictions, load_reads, load_truth

    inputs = {"predictions": args.predictions, "truth": args.truth}
    if args.reads:
        inputs["reads"] = args.reads
    overrides = {
        "level": args.level,
        "n_bootstrap": args.bootstrap,
        "seed": args.seed,
        "threshold": args.threshold,
        "target_sensitivity": args.target_sensitivity,
        "target_specificity": args.target_specificity,
        "reference_model": args.reference_model,
        "subgroups": args.subgroup,
        "kappa_weights": args.kappa_weights,
        "mrmc_covariance": args.mrmc_covariance,
        "mrmc_rating": args.mrmc_rating,
        "note": args.note,
    }
    data = load_yaml(args.config) if args.config else {}
    rules = ("threshold", "target_sensitivity", "target_specificity")
    if any(overrides[k] is not None for k in rules):
        for key in rules:  # a rule on the command line replaces the file's rule
            data.pop(key, None)
    data.update({k: v for k, v in overrides.items() if v is not None})
    data["inputs"] = inputs
    cfg = from_dict(ReportConfig, data, args.config or "command line")
    truth = load_truth(args.truth)
    predictions = load_predictions(args.predictions, truth)
    reads = load_reads(args.reads, truth) if args.reads else None
    if reads is not None and cfg.mrmc_rating == "confidence" and "confidence" not in reads.columns:
        raise ConfigError("--mrmc-rating", f"{args.reads} has no 'confidence' column")
    result = build_report(truth, predictions, reads, Path(args.out), cfg)
    print(
        f"report written to {result.out_dir / 'report.md'} "
        f"({len(result.tables)} tables, {len(result.figures)} figures)"
    )
    for w in result.warnings:
        print(f"note: {w}")
    return 0
