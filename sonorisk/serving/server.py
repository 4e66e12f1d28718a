"""Start the service: Ray (local or a cluster), Serve's HTTP proxy, the application."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from sonorisk.errors import ConfigError
from sonorisk.pipeline.config import pipeline_yaml
from sonorisk.serving.config import ServeConfig

log = logging.getLogger(__name__)


def resolve_models_config(config: ServeConfig) -> Any:
    """``models.bundle/detector/classifier`` -> ``ResolvedModels`` (ConfigError naming
    the key when they name nothing usable)."""
    from sonorisk.errors import InputError
    from sonorisk.models.resolve import resolve_models

    models = config.models
    try:
        return resolve_models(models.bundle, models.detector, models.classifier)
    except InputError as exc:
        key = "bundle"
        for role in ("detector", "classifier"):
            given = getattr(models, role)
            if given and Path(exc.source) == Path(given).expanduser():
                key = role
        raise ConfigError(f"models.{key}", str(exc)) from exc


def resolve_paths(config: ServeConfig) -> ServeConfig:
    """Absolute paths (replicas do not share the launcher's working directory);
    the models must resolve (on a cluster: at the same path on every node)."""
    models = config.models
    resolved = resolve_models_config(config)
    if resolved.bundle is not None:  # the bundle folder; its own files
        models = replace(
            models, bundle=str(resolved.bundle.path.resolve()), detector=None, classifier=None
        )
    else:
        models = replace(
            models,
            bundle=None,
            detector=str(resolved.detector),
            classifier=str(resolved.classifier),
        )
    pipeline = str(pipeline_yaml(config.pipeline).resolve()) if config.pipeline else None
    if pipeline and not Path(pipeline).is_file():
        raise ConfigError("pipeline", f"pipeline config {pipeline} not found")
    token_file = str(Path(config.auth.token_file).resolve()) if config.auth.token_file else None
    return replace(
        config,
        data_dir=str(Path(config.data_dir).resolve()),
        pipeline=pipeline,
        models=models,
        auth=replace(config.auth, token_file=token_file),
    )


def init_ray(config: ServeConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    from sonorisk.threads import child_env

    r = config.ray
    if r.address:
        # Workers of a running cluster do not inherit this process's environment:
        # pass the OpenMP wait policy on (sonorisk/threads.py).
        env = {"OMP_WAIT_POLICY": child_env(1)["OMP_WAIT_POLICY"]}
        ray.init(
            address=r.address,
            namespace=r.namespace,
            log_to_driver=False,
            runtime_env={"env_vars": env},
        )
    else:
        ray.init(
            namespace=r.namespace,
            num_cpus=r.num_cpus,
            num_gpus=r.num_gpus,
            object_store_memory=r.object_store_memory,
            include_dashboard=r.include_dashboard,
            log_to_driver=False,
        )


def start_service(config: ServeConfig, *, blocking_ready_s: float = 600.0) -> Any:
    """Deploy the application (Ray must be initialised); returns the ingress handle."""
    from ray import serve

    from sonorisk.serving.auth import resolve_token
    from sonorisk.serving.deployments import build_app, wait_until_ready
    from sonorisk.serving.streampool import stop_hosts

    config = resolve_paths(config)
    resolve_token(config)  # generate/store the token before any replica reads it
    # Stream hosts are detached actors named after the app: those of an earlier
    # deployment would keep its config (and its streams) under the new one.
    stop_hosts(config.app_name, config.ray.namespace)
    serve.start(
        proxy_location=config.proxy_location,
        http_options={"host": config.host, "port": config.port},
    )
    handle = serve.run(build_app(config), name=config.app_name, route_prefix="/")
    wait_until_ready(blocking_ready_s, config.app_name)
    return handle


def stop_service(config: ServeConfig) -> None:
    """Delete the application and its stream hosts (Ray keeps running)."""
    from ray import serve

    from sonorisk.serving.streampool import stop_hosts

    serve.shutdown()
    stop_hosts(config.app_name, config.ray.namespace)


def serve_forever(config: ServeConfig) -> int:
    """Serve until SIGINT, SIGTERM or SIGHUP, then shut down cleanly.

    A service manager (systemd, Docker, Kubernetes) stops with SIGTERM: the
    application, its stream hosts and the Ray this process started are all
    stopped before it exits 0, so no Ray process outlives it.
    """
    import ray

    from sonorisk.serving.auth import DEFAULT_USER, auth_enabled, resolve_users

    config = resolve_paths(config)
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    started_ray = not ray.is_initialized()
    init_ray(config)
    # After ray.init, which installs its own fatal-signal handlers (a SIGTERM
    # then dumps a stack and aborts, leaving Ray's processes behind).
    previous = {
        sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        start_service(config)
        where = f"http://{config.host}:{config.port}"
        if auth_enabled(config):
            users = resolve_users(config) or {}
            named = [name for name in users if name != DEFAULT_USER]
            said = []
            if DEFAULT_USER in users:
                source = (
                    "auth.token"
                    if config.auth.token
                    else config.auth.token_file
                    or f"{config.data_path / 'token'} (or $SONORISK_TOKEN)"
                )
                said.append(f"token in {source}")
            if named:
                said.append(
                    f"{len(named)} named user{'s' if len(named) > 1 else ''} "
                    "(auth.users, auth.users_file)"
                )
            print(f"sonorisk serving at {where} (token auth on: {'; '.join(said)})", flush=True)
        else:
            print(f"sonorisk serving at {where} (no auth: loopback only)", flush=True)
        print(
            f"API docs at {where}/docs; Ctrl-C stops. Research software: outputs are not "
            "clinical results.",
            flush=True,
        )
        stop.wait()
        print(f"sonorisk: {received[0]} received, shutting down", flush=True)
    finally:
        # Ignore further signals while stopping: a second SIGTERM must not
        # interrupt the teardown half-way (that is what leaves Ray processes).
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        try:
            if ray.is_initialized():
                stop_service(config)
        finally:
            if started_ray and ray.is_initialized():
                ray.shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return 0
