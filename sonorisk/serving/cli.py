"""Verbs of sonorisk.serving: ``serve`` (the HTTP service) and ``batch`` (archives)."""

from __future__ import annotations

import argparse
import sys

from sonorisk.cli_args import non_negative_float, positive_int
from sonorisk.pipeline.cli import PIPELINE_KEYS, model_flags, pipeline_flags


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    serve = groups["root"].add_parser(
        "serve",
        help="run the HTTP service (Ray Serve): upload jobs, live RTSP streams",
        description="Run the Ray Serve application: upload jobs (videos and still images, "
        "per-user history), live RTSP streams with "
        "Server-Sent Events, health, Prometheus metrics, OpenAPI docs at /docs. "
        "Starts a local Ray unless ray.address (or --address) names a cluster. "
        "See docs/serving.md. Research software: outputs are not clinical results.",
    )
    serve.add_argument(
        "--config",
        help="a YAML of this verb's config keys: serving YAML "
        "(configs/serve.yaml); the flags below override it",
    )
    serve.add_argument("--host", help="listen address (auth turns on beyond loopback)")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--data-dir", dest="data_dir", help="uploads, job database, results, generated token"
    )
    serve.add_argument(
        "--pipeline",
        help="pipeline YAML (configs/pipeline*.yaml) or profile (cpu, gpu, "
        "live-replay): the config key pipeline",
    )
    serve.add_argument(
        "--address",
        dest="ray.address",
        help="Ray cluster to join ('auto', 'HOST:PORT'); default: start Ray here",
    )
    model_flags(serve)
    serve.set_defaults(func=_serve)

    batch = groups["root"].add_parser(
        "batch",
        help="score an archive of videos and still images into a CSV/Parquet table "
        "and JSON per file",
        description="Score every video and still image (PNG, JPEG, TIFF, BMP, single-frame "
        "DICOM) in DIR (recursively) or matching GLOB: one row per file (kind, "
        "risk, status, lesions, clips, errors, timing) in --out (CSV, and a "
        "Parquet copy beside it) plus the scoring JSON of each file. Reruns skip "
        "finished files; a failing file is recorded and the batch goes on.",
    )
    batch.add_argument("inputs", nargs="+", metavar="DIR|GLOB|FILE")
    batch.add_argument("--out", default="results.csv", help="results CSV (Parquet beside it)")
    batch.add_argument("--json-dir", help="where the per-file JSON go (default: OUT stem + .json/)")
    pipeline_flags(batch)
    model_flags(batch)
    batch.add_argument(
        "--workers",
        dest="batch.workers",
        type=positive_int,
        metavar="N",
        help="local worker processes (default: usable CPUs / threads, so "
        "workers x threads never exceeds the cores)",
    )
    batch.add_argument(
        "--threads",
        dest="batch.threads",
        type=positive_int,
        metavar="N",
        help="torch threads per worker (default 1)",
    )
    batch.add_argument(
        "--file-timeout",
        dest="batch.file_timeout_s",
        type=non_negative_float,
        metavar="SECONDS",
        help="a video still scoring after SECONDS gets a failed row (error "
        "type 'timeout') and its worker is replaced; 0: no limit "
        "(default 3600; local workers only)",
    )
    batch.add_argument(
        "--ray",
        dest="batch.ray_address",
        metavar="ADDRESS",
        help="run on a Ray cluster ('auto', 'HOST:PORT') instead of local processes",
    )
    batch.add_argument("--no-progress", action="store_true")
    batch.set_defaults(func=_batch)


def _serve(args: argparse.Namespace) -> int:
    from sonorisk.pipeline.cli import flag_overrides, models_given_way
    from sonorisk.serving.config import load_serve_config
    from sonorisk.serving.server import serve_forever

    overrides = flag_overrides(args, ("host", "port", "data_dir", "pipeline", "ray.address"))
    return serve_forever(models_given_way(load_serve_config(args.config, overrides), overrides))


def _batch(args: argparse.Namespace) -> int:
    from sonorisk.config import load_config
    from sonorisk.pipeline.cli import flag_overrides, models_given_way, resolve_model_flags
    from sonorisk.pipeline.config import BatchConfig, pipeline_yaml
    from sonorisk.serving.batch import BatchSettings, run_batch, summary_text
    from sonorisk.threads import processes_for

    overrides = flag_overrides(
        args,
        (
            *PIPELINE_KEYS,
            "batch.workers",
            "batch.threads",
            "batch.file_timeout_s",
            "batch.ray_address",
        ),
    )
    yaml_file = pipeline_yaml(args.config) if args.config else None
    config = models_given_way(load_config(BatchConfig, yaml_file, overrides), overrides)
    if config.batch.ray_address:
        from sonorisk.extras import require_extra

        require_extra("serve", "sonorisk batch --ray")
    resolved = resolve_model_flags(config.models)
    print(f"models: {resolved.label()}", file=sys.stderr)
    options = config.batch
    settings = BatchSettings(
        device=config.models.device,
        pipeline=config.pipeline(),
        threads=options.threads,
        models=resolved,
        detector_min_size=config.models.detector_min_size,
        detector_tta=config.models.detector_tta,
        runtime=config.models.runtime,
        file_timeout_s=options.file_timeout_s or None,
    )
    workers = options.workers or processes_for(settings.threads)
    summary = run_batch(
        args.inputs,
        settings,
        args.out,
        json_dir=args.json_dir,
        workers=workers,
        ray_address=options.ray_address,
        progress=not args.no_progress,
    )
    for path, reason in summary.failures:
        print(f"sonorisk: failed: {path}: {reason}", file=sys.stderr)
    print(summary_text(summary))
    print("research output, not a clinical result; see the notice in each JSON.")
    return 1 if summary.failed else 0
