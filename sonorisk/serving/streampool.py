"""The ingress's side of the stream hosts (``streamhost.py``): create or find
them by name, place a new stream on the least loaded, reach a stream's host
from its id, and turn a host that died into a failed stream, never an error
of the server.

The ingress keeps no state about streams: every answer comes from the hosts,
so several ingress replicas agree. ``max_streams`` counts the streams running
on all hosts that answer; one ingress replica places one stream at a time,
so only concurrent starts through different ingress replicas can exceed it,
by at most one per extra replica.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import random
from typing import Any

from sonorisk.serving.config import ServeConfig, StreamsConfig
from sonorisk.serving.states import StreamState
from sonorisk.serving.streamhost import LOST, UNKNOWN, StreamHost, StreamRef, host_name

log = logging.getLogger(__name__)


class StreamNotFound(Exception):
    """No such stream (404)."""


class PoolFull(Exception):
    """``max_streams`` streams run already (429)."""


class NoHost(Exception):
    """No stream host answers (503)."""


class HostDown(Exception):
    """A host did not answer: it died, is restarting, or timed out."""

    def __init__(self, index: int, reason: str) -> None:
        self.index = index
        self.reason = reason
        super().__init__(f"stream host {index}: {reason}")


def _host_errors() -> tuple[type[BaseException], ...]:
    import ray.exceptions as rex

    return (
        rex.RayActorError,
        rex.ActorUnavailableError,
        rex.GetTimeoutError,
        asyncio.TimeoutError,
        TimeoutError,
    )


def _spread(index: int) -> Any:
    """Host ``index`` prefers the ``index``-th live node (round robin over the nodes
    sorted by id): hosts exist to use more machines, and Ray's own ``SPREAD`` is
    best effort (three hosts landed on two of three nodes in the cluster test).
    Soft: elsewhere when that node is gone (also when Ray restarts the host after
    losing its node) or lacks the resources the host asks for."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))
    if not nodes:
        return "SPREAD"
    return NodeAffinitySchedulingStrategy(nodes[index % len(nodes)], soft=True)


def lost_status(stream_id: str, reason: str) -> dict[str, Any]:
    """The status of a stream whose host died: failed, with the reason."""
    ref = StreamRef.parse(stream_id)
    return {
        "stream_id": stream_id,
        "url": None,
        "state": StreamState.FAILED,
        "last_error": reason,
        "frames_in": None,
        "frames_processed": None,
        "frames_dropped": None,
        "lesions": [],
        "ended_segments": [],
        "host": {"replica": ref.host if ref else None, "lost": True},
    }


class StreamPool:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.size = config.streams.replicas
        self.namespace = config.ray.namespace
        self._hosts: dict[int, Any] = {}
        self._lock: asyncio.Lock | None = None

    # ------------------------------------------------------------- hosts
    def host(self, index: int) -> Any:
        """The actor handle of host ``index`` (created when it does not exist)."""
        handle = self._hosts.get(index)
        if handle is None:
            import ray

            from sonorisk.threads import child_env

            cfg = self.config.streams
            options = dict(cfg.ray_actor_options)
            if "scheduling_strategy" not in options:
                options["scheduling_strategy"] = _spread(index)
            runtime_env = dict(options.pop("runtime_env", None) or {})
            runtime_env["env_vars"] = {
                **child_env(cfg.torch_threads),
                **(runtime_env.get("env_vars") or {}),
            }
            # Detached: a host outlives the ingress replica that created it (streams
            # survive an ingress restart); sonorisk serve removes them at exit
            # (stop_hosts). Restarted by Ray when its process dies.
            handle = (
                ray.remote(StreamHost)
                .options(
                    name=host_name(self.config.app_name, index),
                    namespace=self.namespace,
                    lifetime="detached",
                    get_if_exists=True,
                    max_restarts=-1,
                    max_concurrency=1000,
                    runtime_env=runtime_env,
                    **options,
                )
                .remote(index, self.config)
            )
            self._hosts[index] = handle
        return handle

    def start_all(self) -> None:
        """Create (or find) every host now, so they start while the app deploys."""
        for index in range(self.size):
            self.host(index)

    async def _call(self, index: int, method: str, *args: Any, timeout_s: float = 30.0) -> Any:
        import ray.exceptions as rex

        async def call() -> Any:
            return await getattr(self.host(index), method).remote(*args)

        try:
            return await asyncio.wait_for(call(), timeout_s)
        except _host_errors() as exc:
            if isinstance(exc, rex.ActorDiedError):
                self._hosts.pop(index, None)  # gone for good: recreate on the next call
            raise HostDown(index, f"{type(exc).__name__}: {str(exc)[:300]}") from exc

    async def loads(self, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Every host that answers: replica, pid, node, active streams, backlog, streams."""

        async def one(index: int) -> dict[str, Any] | None:
            try:
                return await self._call(index, "load", timeout_s=timeout_s)
            except HostDown as exc:
                log.warning("%s", exc)
                return None

        answers = await asyncio.gather(*(one(k) for k in range(self.size)))
        return [a for a in answers if a is not None]

    # ----------------------------------------------------------- streams
    async def place(
        self, url: str, config: StreamsConfig, pipeline: Any, info: dict[str, Any]
    ) -> str:
        """Start a stream on the least loaded host; its id."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            loads = await self.loads()
            if not loads:
                raise NoHost(f"none of the {self.size} stream hosts answers")
            active = sum(load["active"] for load in loads)
            limit = self.config.streams.max_streams
            if active >= limit:
                raise PoolFull(f"{active} streams already running (streams.max_streams = {limit})")
            best = min(loads, key=lambda load: (load["active"], random.random()))
            return await self._call(
                best["replica"], "start", url, config, pipeline, info, timeout_s=60.0
            )

    def _ref(self, stream_id: str) -> StreamRef:
        ref = StreamRef.parse(stream_id)
        if ref is None or ref.host >= self.size:
            raise StreamNotFound(stream_id)
        return ref

    async def _ask(
        self, stream_id: str, method: str, *args: Any, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """A host's answer about one stream; a lost stream's failed status as
        ``{"missing": "lost", "reason": ...}``; ``StreamNotFound`` when unknown."""
        ref = self._ref(stream_id)
        try:
            out = await self._call(ref.host, method, stream_id, *args, timeout_s=timeout_s)
        except HostDown as exc:
            return {
                "missing": LOST,
                "reason": f"its stream host (replica {ref.host}) is unreachable: {exc.reason}",
            }
        if out.get("missing") == UNKNOWN:
            raise StreamNotFound(stream_id)
        return out

    async def status(self, stream_id: str) -> dict[str, Any]:
        out = await self._ask(stream_id, "status")
        return lost_status(stream_id, out["reason"]) if out.get("missing") else out

    async def stop(self, stream_id: str) -> dict[str, Any]:
        out = await self._ask(stream_id, "stop", timeout_s=60.0)
        return lost_status(stream_id, out["reason"]) if out.get("missing") else out

    async def subscribe(self, stream_id: str) -> dict[str, Any]:
        """``{"hello": event, "seq": n}``, or ``{"missing": "lost", "reason": ...}``."""
        return await self._ask(stream_id, "subscribe")

    async def events(self, stream_id: str, after: int, timeout_s: float) -> dict[str, Any]:
        """``{"events", "next", "ended"}`` or ``{"missing": "lost", "reason"}``."""
        return await self._ask(stream_id, "events", after, timeout_s, timeout_s=timeout_s + 30.0)

    async def list(self) -> list[dict[str, Any]]:
        return [s for load in await self.loads() for s in load["streams"]]

    async def metrics_texts(self) -> builtins.list[bytes]:  # list: the method above
        async def one(index: int) -> bytes | None:
            try:
                return await self._call(index, "metrics_text", timeout_s=10.0)
            except HostDown:
                return None

        texts = await asyncio.gather(*(one(k) for k in range(self.size)))
        return [t for t in texts if t is not None]


def stop_hosts(app_name: str, namespace: str) -> int:
    """Kill the stream hosts of ``app_name`` (after serve.shutdown, or before a new
    deployment replaces them); how many."""
    import ray

    prefix = host_name(app_name, 0)[:-1]
    killed = 0
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == namespace and actor["name"].startswith(prefix):
            try:
                ray.kill(ray.get_actor(actor["name"], namespace=namespace), no_restart=True)
                killed += 1
            except ValueError:  # gone meanwhile
                continue
    return killed
