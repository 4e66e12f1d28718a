"""Verbs of sonorisk.serving: ``serve`` (the HTTP service) and ``batch`` (archives)."""

from __future__ import annotations

import argparse
import sys

from sonorisk.cli_args import non_negative_float, positive_int
from sonorisk.pipeline.cli import model_flags


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    from sonorisk.runtime import RUNTIMES

    serve = groups["root"].add_parser(
        "serve", help="run the HTTP service (Ray Serve): upload jobs, live RTSP streams",
        description="Run the Ray Serve application: video upload jobs, live RTSP streams with "
                    "Server-Sent Events, health, Prometheus metrics, OpenAPI docs at /docs. "
                    "Starts a local Ray unless ray.address (or --address) names a cluster. "
                    "See docs/serving.md. Research software: outputs are not clinical results.")
    serve.add_argument("--config", help="serving YAML (configs/serve.yaml)")
    serve.add_argument("--host", help="listen address (auth turns on beyond loopback)")
    serve.add_argument("--port", type=int)
    serve.add_argument("--models", dest="models.bundle", metavar="NAME|DIR",
                       help="model bundle NAME[@VERSION] or folder (or a folder with "
                            "detector.pt and classifier.pt); default: models.bundle of the "
                            "config, else the default bundle")
    serve.add_argument("--data-dir", dest="data_dir",
                       help="uploads, job database, results, generated token")
    serve.add_argument("--pipeline", help="pipeline YAML (configs/pipeline*.yaml)")
    serve.add_argument("--address", dest="ray.address",
                       help="Ray cluster to join ('auto', 'HOST:PORT'); default: start Ray here")
    serve.add_argument("--device", dest="models.device", help="cpu|cuda|auto")
    serve.add_argument("--runtime", dest="models.runtime", choices=RUNTIMES,
                       help="torch or onnx (ONNX Runtime on the CPU; docs/runtime.md)")
    serve.set_defaults(func=_serve)

    batch = groups["root"].add_parser(
        "batch", help="score an archive of videos into a CSV/Parquet table and JSON per video",
        description="Score every video in DIR (recursively) or matching GLOB: one row per "
                    "video (risk, status, lesions, clips, errors, timing) in --out (CSV, and "
                    "a Parquet copy beside it) plus the scoring JSON of each video. Reruns "
                    "skip finished videos; a failing video is recorded and the batch goes on.")
    batch.add_argument("inputs", nargs="+", metavar="DIR|GLOB|FILE")
    batch.add_argument("--out", default="results.csv", help="results CSV (Parquet beside it)")
    batch.add_argument("--json-dir", help="where the per-video JSON go (default: OUT stem + "
                                          ".json/)")
    model_flags(batch)
    batch.add_argument("--config", help="pipeline YAML (configs/pipeline*.yaml)")
    batch.add_argument("--device", default="cpu")
    batch.add_argument("--runtime", choices=RUNTIMES, default="torch",
                       help="torch (default) or onnx: ONNX Runtime on the CPU (docs/runtime.md)")
    batch.add_argument("--workers", type=positive_int, default=None,
                       help="local worker processes (default: usable CPUs / threads, so "
                            "workers x threads never exceeds the cores)")
    batch.add_argument("--threads", type=positive_int, default=1, help="torch threads per worker")
    batch.add_argument("--file-timeout", dest="file_timeout_s", type=non_negative_float,
                       default=3600.0, metavar="SECONDS",
                       help="a video still scoring after SECONDS gets a failed row (error "
                            "type 'timeout') and its worker is replaced; 0: no limit "
                            "(default 3600; local workers only)")
    batch.add_argument("--ray", metavar="ADDRESS",
                       help="run on a Ray cluster ('auto', 'HOST:PORT') instead of local "
                            "processes")
    batch.add_argument("--no-progress", action="store_true")
    batch.set_defaults(func=_batch)


def _serve(args: argparse.Namespace) -> int:
    from sonorisk.serving.config import load_serve_config
    from sonorisk.serving.server import serve_forever

    overrides = {k: v for k, v in vars(args).items()
                 if k in ("host", "port", "data_dir", "pipeline", "ray.address",
                          "models.device", "models.bundle", "models.runtime")}
    config = load_serve_config(args.config, overrides)
    if overrides.get("models.bundle"):  # --models names the pair: the config's files give way
        config.models.detector = config.models.classifier = None
    return serve_forever(config)


def _batch(args: argparse.Namespace) -> int:
    from sonorisk.pipeline.cli import resolve_model_flags
    from sonorisk.serving.batch import BatchSettings, run_batch, summary_text
    from sonorisk.threads import processes_for

    resolved = resolve_model_flags(args)
    print(f"models: {resolved.label()}", file=sys.stderr)
    settings = BatchSettings(device=args.device, pipeline=args.config,
                             threads=max(1, args.threads), models=resolved,
                             runtime=args.runtime, file_timeout_s=args.file_timeout_s or None)
    workers = args.workers or processes_for(settings.threads)
    summary = run_batch(args.inputs, settings, args.out, json_dir=args.json_dir,
                        workers=workers, ray_address=args.ray, progress=not args.no_progress)
    for path, reason in summary.failures:
        print(f"sonorisk: failed: {path}: {reason}", file=sys.stderr)
    print(summary_text(summary))
    print("research output, not a clinical result; see the notice in each JSON.")
    return 1 if summary.failed else 0
