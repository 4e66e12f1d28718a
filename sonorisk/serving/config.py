"""Serving configuration (``configs/serve.yaml``), loaded with ``sonorisk.config.load_config``.

One file runs the service on a laptop (``ray.address: null`` starts a local
Ray) and on a cluster (``ray.address: auto`` or ``ray://HOST:10001``; more
replicas, GPUs per replica, fractional GPUs for co-located models).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sonorisk.errors import ConfigError
from sonorisk.pipeline.config import ModelsConfig


@dataclass
class ModelDeploymentConfig:
    """One model deployment (detector or classifier)."""

    num_replicas: int = 1
    # Passed to Ray as is: num_cpus, num_gpus (fractions allowed: 0.5 puts two
    # replicas on one GPU), memory, resources, ...
    ray_actor_options: dict[str, Any] = field(default_factory=lambda: {"num_cpus": 1})
    # @serve.batch: requests per model call and how long to wait to fill one.
    max_batch_size: int = 8
    batch_wait_timeout_s: float = 0.005
    max_ongoing_requests: int = 32
    torch_threads: int = 1
    # Scheduling priority of the replica's threads (Linux niceness, 0-19; Ray
    # starts workers at 15). Live streams track every frame in the stream
    # hosts while the models take what CPU is left (pipeline ``schedule:
    # when_free``), so on a shared CPU the models run at 19: when cores are
    # short, tracking goes first and the models answer later. None: as Ray
    # starts them.
    niceness: int | None = 19


@dataclass
class IngressConfig:
    """The HTTP ingress: upload checks, the job runner, the stream API (docs/serving.md)."""

    # More than one needs a job store every replica reaches (jobs.database_url:
    # PostgreSQL) and a data_dir they share (uploads and results).
    num_replicas: int = 1
    ray_actor_options: dict[str, Any] = field(default_factory=lambda: {"num_cpus": 0})
    job_workers: int = 2  # videos scored at once
    torch_threads: int = 1  # optical flow and clip cropping run here


@dataclass
class AuthConfig:
    # auto: on unless the server listens on a loopback address only.
    enabled: Literal["auto", "on", "off"] = "auto"
    token: str | None = None
    token_file: str | None = None  # one line; read at start (env SONORISK_TOKEN also works)
    # Named users (sonorisk.serving.auth): name -> token, and/or a file of "NAME TOKEN"
    # lines (mode 0600). The single token above is the user "default".
    users: dict[str, str] = field(default_factory=dict)
    users_file: str | None = None


@dataclass
class UploadConfig:
    max_bytes: int = 2 * 1024**3
    # Content types a client may declare (none declared is fine: the bytes are checked).
    allowed_content_types: list[str] = field(
        default_factory=lambda: [
            "application/octet-stream",
            "video/*",
            "application/dicom",
            "image/png",
            "image/jpeg",
            "image/tiff",
            "image/bmp",
            "image/x-ms-bmp",
        ]
    )


@dataclass
class JobsConfig:
    # None: SQLite in data_dir (jobs.sqlite), one node and one ingress replica.
    # postgresql://USER:PASSWORD@HOST/DB: one store for several ingress replicas.
    database_url: str | None = None
    # A replica renews the leases of its jobs every lease_s / 3; another replica
    # takes over a job only once its lease ran out (its holder died).
    lease_s: float = 30.0
    max_attempts: int = 3  # a job interrupted this often (server or replica died) fails
    model_retry_s: float = 60.0  # how long a model call is retried while replicas recover
    model_call_timeout_s: float = 120.0
    # A job still scoring after this long fails ("ScoringTimeout"), checked
    # between frames; one running this long plus a minute is reported stuck by
    # /health (its worker is blocked in a call). null: no limit.
    timeout_s: float | None = 1800.0


@dataclass
class StreamsConfig:
    max_streams: int = 8  # over all stream hosts
    # Stream hosts (streamhost.py): the processes where streams are read, tracked,
    # flowed and cropped; each new stream goes to the least loaded one and stays.
    replicas: int = 1
    torch_threads: int = 1  # per host
    # Passed to Ray as is. Empty (the default): Ray's actor default, which holds no
    # CPU while running (fits beside the models on a small machine); on a cluster
    # give each host its CPUs (docs/serving.md). Not num_cpus: 0: Ray places an
    # actor asking for nothing on the node that creates it, ignoring the spread.
    # Host k prefers the k-th node (round robin) unless a scheduling_strategy is given.
    ray_actor_options: dict[str, Any] = field(default_factory=dict)
    rtsp_transport: str | None = "tcp"  # udp | tcp | None (FFmpeg's choice)
    # What a client may ask the service to open (sonorisk.serving.stream_policy):
    # schemes (rtmp, srt, udp, tcp only when added here) and, when not empty,
    # hosts: names, ".domain" suffixes, IP addresses or CIDR networks.
    allowed_schemes: list[str] = field(default_factory=lambda: ["rtsp", "rtsps"])
    allowed_hosts: list[str] = field(default_factory=list)
    open_timeout_s: float = 5.0
    read_timeout_s: float = 3.0
    # Frames waiting for compute; beyond this the oldest are dropped (counted).
    max_backlog: int = 64
    # When more than this many frames wait, skip to the newest ``catchup_window``
    # (contiguous, so clips still form) and count the rest as dropped.
    catchup_threshold: int = 24
    catchup_window: int = 12
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 8.0
    # A stream that stays unreachable this long is given up and its slot freed
    # (None: retry for ever, which lets dead streams take every slot).
    give_up_after_s: float | None = 300.0
    # A gap in the feed up to this long keeps lesion state; a longer one ends
    # every lesion and starts a new segment.
    short_gap_s: float = 3.0
    # Streams favour latency: one keyframe per detector call. Clips: under the
    # ``when_free`` schedule, at most this many per classifier call (a lone
    # clip never waits for others); under ``in_order``, clips wait for a batch
    # this big, so set 1 there.
    detector_batch_size: int = 1
    classifier_batch_size: int = 8
    # Do not hold the first frames while the scan region is estimated: they are
    # detected on the whole frame meanwhile (pipeline ``crop_wait``).
    crop_wait: bool = False
    # No frame waits for a model: every frame is tracked at once by optical
    # flow while the detector and classifier work in the background (pipeline
    # ``schedule``; docs/performance.md). "in_order" detects every keyframe
    # before its boxes go out, as files are scored, and drops frames instead
    # when the models cannot keep up.
    schedule: Literal["in_order", "when_free"] = "when_free"
    event_queue: int = 2048  # per subscriber; a slow client loses its oldest events


@dataclass
class RayConfig:
    address: str | None = None  # None: start Ray on this machine; "auto": join a cluster
    namespace: str = "sonorisk"
    num_cpus: int | None = None  # local Ray only
    num_gpus: int | None = None
    object_store_memory: int | None = None  # bytes, local Ray only
    include_dashboard: bool = False


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    app_name: str = "sonorisk"
    # Where Serve runs HTTP proxies: HeadOnly (one address; right for one machine and
    # for nodes sharing an IP) or EveryNode (put a load balancer in front).
    proxy_location: Literal["HeadOnly", "EveryNode"] = "HeadOnly"
    data_dir: str = "sonorisk-serve"  # uploads, job database, results, generated token
    # A configs/pipeline*.yaml or a profile (cpu, gpu, live-replay); None: PipelineConfig defaults.
    pipeline: str | None = None
    models: ModelsConfig = field(default_factory=ModelsConfig)
    detector: ModelDeploymentConfig = field(default_factory=ModelDeploymentConfig)
    classifier: ModelDeploymentConfig = field(default_factory=ModelDeploymentConfig)
    ingress: IngressConfig = field(default_factory=IngressConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    upload: UploadConfig = field(default_factory=UploadConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    streams: StreamsConfig = field(default_factory=StreamsConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def validate(self) -> None:
        for name in ("detector", "classifier"):
            dep: ModelDeploymentConfig = getattr(self, name)
            if dep.num_replicas < 1:
                raise ConfigError(f"{name}.num_replicas", f"must be >= 1, got {dep.num_replicas}")
            if dep.max_batch_size < 1:
                raise ConfigError(
                    f"{name}.max_batch_size", f"must be >= 1, got {dep.max_batch_size}"
                )
            if dep.batch_wait_timeout_s < 0:
                raise ConfigError(f"{name}.batch_wait_timeout_s", "must be >= 0")
            if dep.niceness is not None and not 0 <= dep.niceness <= 19:
                raise ConfigError(f"{name}.niceness", f"must be 0-19 (or null), got {dep.niceness}")
            gpus = dep.ray_actor_options.get("num_gpus", 0) or 0
            if not isinstance(gpus, int | float) or gpus < 0:
                raise ConfigError(
                    f"{name}.ray_actor_options.num_gpus",
                    f"must be a number >= 0 (fractions share a GPU), got {gpus!r}",
                )
        self.models.validate("models")
        if not 0 < self.port < 65536:
            raise ConfigError("port", f"must be 1-65535, got {self.port}")
        if not isinstance(self.auth.users, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.auth.users.items()
        ):
            raise ConfigError("auth.users", "must map user names to tokens (strings)")
        if self.upload.max_bytes < 1:
            raise ConfigError("upload.max_bytes", "must be >= 1")
        if self.ingress.job_workers < 1:
            raise ConfigError("ingress.job_workers", "must be >= 1")
        self._validate_jobs()
        s = self.streams
        if s.replicas < 1:
            raise ConfigError("streams.replicas", f"must be >= 1, got {s.replicas}")
        if s.torch_threads < 1:
            raise ConfigError("streams.torch_threads", f"must be >= 1, got {s.torch_threads}")
        if s.max_streams < 1:
            raise ConfigError("streams.max_streams", f"must be >= 1, got {s.max_streams}")
        from sonorisk.serving.stream_policy import KNOWN_SCHEMES, TRANSPORTS

        unknown = [x for x in s.allowed_schemes if x not in KNOWN_SCHEMES]
        if unknown or not s.allowed_schemes:
            raise ConfigError(
                "streams.allowed_schemes",
                f"must be some of {list(KNOWN_SCHEMES)}, got {s.allowed_schemes}",
            )
        if s.rtsp_transport is not None and s.rtsp_transport not in TRANSPORTS:
            raise ConfigError(
                "streams.rtsp_transport", f"must be udp, tcp or null, got {s.rtsp_transport!r}"
            )
        if s.give_up_after_s is not None and s.give_up_after_s <= 0:
            raise ConfigError("streams.give_up_after_s", "must be > 0 or null (never)")
        if s.catchup_window < 8 or s.catchup_window > s.catchup_threshold:
            raise ConfigError(
                "streams.catchup_window", "must be >= 8 (one clip) and <= streams.catchup_threshold"
            )
        if s.max_backlog < s.catchup_threshold:
            raise ConfigError("streams.max_backlog", "must be >= streams.catchup_threshold")
        if s.reconnect_initial_s <= 0 or s.reconnect_max_s < s.reconnect_initial_s:
            raise ConfigError(
                "streams.reconnect_initial_s", "must be > 0 and <= streams.reconnect_max_s"
            )

    def _validate_jobs(self) -> None:
        from sonorisk.db import is_sqlite

        replicas = self.ingress.num_replicas
        if replicas < 1:
            raise ConfigError("ingress.num_replicas", f"must be >= 1, got {replicas}")
        url = self.jobs.database_url
        if replicas > 1 and (url is None or is_sqlite(url)):
            where = "SQLite in data_dir" if url is None else "a SQLite URL"
            raise ConfigError(
                "ingress.num_replicas",
                f"{replicas} ingress replicas need a job store they all reach: "
                f"set jobs.database_url to a PostgreSQL URL "
                f"(postgresql://USER:PASSWORD@HOST/DB); jobs.database_url is "
                f"{where}, which one replica alone may write",
            )
        if url is not None and not (is_sqlite(url) or url.startswith(("postgresql", "postgres:"))):
            raise ConfigError(
                "jobs.database_url",
                "must be a postgresql:// or sqlite:/// URL (or null: SQLite in data_dir)",
            )
        if self.jobs.lease_s <= 0:
            raise ConfigError("jobs.lease_s", f"must be > 0, got {self.jobs.lease_s}")
        if self.jobs.timeout_s is not None and self.jobs.timeout_s <= 0:
            raise ConfigError(
                "jobs.timeout_s", f"must be > 0 (or null: no limit), got {self.jobs.timeout_s}"
            )
        if self.jobs.max_attempts < 1:
            raise ConfigError("jobs.max_attempts", "must be >= 1")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def jobs_database(self) -> str:
        """Where the job store lives: ``jobs.database_url``, or SQLite in data_dir."""
        return self.jobs.database_url or str(self.data_path / "jobs.sqlite")


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_serve_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> ServeConfig:
    from sonorisk.config import load_config

    config = load_config(ServeConfig, path, overrides)
    config.validate()
    if config.auth.users_file:  # replicas may run elsewhere: the file as named here
        config.auth.users_file = str(Path(config.auth.users_file).expanduser().resolve())
    return config
