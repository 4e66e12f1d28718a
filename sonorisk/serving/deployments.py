"""Ray Serve deployments: the detector and the clip classifier, each with
dynamic batching (``@serve.batch``), and the composition behind the ingress.

A request to ``Detector.predict`` is one scorer call (a few keyframes of one
video or stream); concurrent requests from different jobs and streams are
gathered into one model call of up to ``max_batch_size`` requests. Each reply
names the Ray node that answered (the adapters count them; the cluster test
uses that to show work spreading).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ray import serve

from sonorisk.errors import InputError
from sonorisk.runtime import Runtime
from sonorisk.serving.config import ModelDeploymentConfig, ServeConfig
from sonorisk.serving.heap import freeze

log = logging.getLogger(__name__)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def _set_threads(n: int) -> None:
    from sonorisk.threads import set_torch_threads

    set_torch_threads(n)


class _Priority:
    """A replica's niceness (``ModelDeploymentConfig.niceness``), applied after
    the model loaded and again on the first call, so that the threads made by
    loading and by Serve's event loop run at it too."""

    def __init__(self, niceness: int | None) -> None:
        self.niceness = niceness
        self.pending = niceness is not None
        self.apply()

    def apply(self) -> None:
        from sonorisk.threads import set_niceness

        if self.niceness is not None:
            set_niceness(self.niceness)

    def first_call(self) -> None:
        if self.pending:
            self.pending = False
            self.apply()


def _apply_batching(method: Any, cfg: ModelDeploymentConfig) -> None:
    method.set_max_batch_size(cfg.max_batch_size)
    method.set_batch_wait_timeout_s(cfg.batch_wait_timeout_s)


@serve.deployment(name="Detector")
class Detector:
    """The lesion detector (``FrameDetector``) as a deployment."""

    def __init__(
        self,
        checkpoint: str,
        device: str,
        overrides: dict[str, Any] | None,
        cfg: ModelDeploymentConfig,
        runtime: Runtime = "torch",
    ) -> None:
        _set_threads(cfg.torch_threads)
        from sonorisk.models.load import detector_card, load_detector_file

        self.model = load_detector_file(checkpoint, device, overrides, runtime)
        self.card = detector_card(self.model)
        self.node = _node_id()
        self.model_calls = 0
        self.images = 0
        _apply_batching(self._batched, cfg)
        freeze()  # the model and its imports: no full collection walks them (heap.py)
        self.priority = _Priority(cfg.niceness)

    async def info(self) -> dict[str, Any]:
        return {"node": self.node, "result": self.card}

    async def stats(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "result": {"model_calls": self.model_calls, "images": self.images},
        }

    async def predict(self, images: list[Any], frame_indices: list[int]) -> dict[str, Any]:
        self.priority.first_call()
        return {"node": self.node, **await self._batched((images, frame_indices))}

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _batched(self, requests: list[tuple[list[Any], list[int]]]) -> list[Any]:
        images = [im for imgs, _ in requests for im in imgs]
        indices = [i for _, idx in requests for i in idx]
        try:
            found = self.model.predict(images, indices)
        except InputError:
            # One caller's bad frames must not fail the others batched with it.
            return [self._one(imgs, idx) for imgs, idx in requests]
        self.model_calls += 1
        self.images += len(images)
        out, start = [], 0
        for imgs, _ in requests:
            out.append({"result": found[start : start + len(imgs)]})
            start += len(imgs)
        return out

    def _one(self, images: list[Any], frame_indices: list[int]) -> dict[str, Any]:
        return _answer(lambda: self.model.predict(images, frame_indices))


@serve.deployment(name="Classifier")
class Classifier:
    """The clip classifier (I3D, TimeSformer, ...) as a deployment."""

    def __init__(
        self, checkpoint: str, device: str, cfg: ModelDeploymentConfig, runtime: Runtime = "torch"
    ) -> None:
        _set_threads(cfg.torch_threads)
        from sonorisk.models.load import classifier_card, load_classifier_file

        self.model = load_classifier_file(checkpoint, device, runtime)
        self.card = classifier_card(self.model)
        self.node = _node_id()
        self.max_clips = max(1, cfg.max_batch_size)
        _apply_batching(self._batched, cfg)
        freeze()  # the model and its imports: no full collection walks them (heap.py)
        self.priority = _Priority(cfg.niceness)

    async def info(self) -> dict[str, Any]:
        return {"node": self.node, "result": {"card": self.card, "config": self.model.config}}

    async def predict(self, clips: list[Any], heatmaps: bool) -> dict[str, Any]:
        self.priority.first_call()
        return {"node": self.node, **await self._batched((clips, heatmaps))}

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _batched(self, requests: list[tuple[list[Any], bool]]) -> list[Any]:
        out: list[Any] = [None] * len(requests)
        for flag in (False, True):
            group = [k for k, (_, h) in enumerate(requests) if h == flag]
            if not group:
                continue
            clips = [c for k in group for c in requests[k][0]]
            try:
                scores = self.model.predict(clips, heatmaps=flag, batch_size=self.max_clips * 4)
            except InputError:  # as in Detector: each caller gets its own answer
                for k in group:
                    out[k] = self._one(requests[k][0], flag)
                continue
            start = 0
            for k in group:
                n = len(requests[k][0])
                out[k] = {"result": scores[start : start + n]}
                start += n
        return out

    def _one(self, clips: list[Any], heatmaps: bool) -> dict[str, Any]:
        return _answer(
            lambda: self.model.predict(clips, heatmaps=heatmaps, batch_size=self.max_clips * 4)
        )


def _answer(call: Callable[[], Any]) -> dict[str, Any]:
    """``{"result": ...}``, or ``{"input_error": [source, reason]}`` for the caller's own
    bad input: returned, not raised, so Serve logs no traceback for a bad video and
    the caller re-raises it as the InputError it is (sonorisk.serving.remote)."""
    try:
        return {"result": call()}
    except InputError as exc:
        return {"input_error": [exc.source, exc.reason]}


def _options(cfg: ModelDeploymentConfig) -> dict[str, Any]:
    return {
        "num_replicas": cfg.num_replicas,
        "ray_actor_options": dict(cfg.ray_actor_options),
        "max_ongoing_requests": cfg.max_ongoing_requests,
    }


def build_app(config: ServeConfig) -> Any:
    """The application: ingress (FastAPI) composed with the two model deployments."""
    from sonorisk.serving.app import Ingress
    from sonorisk.serving.server import resolve_models_config

    config.validate()
    models = config.models
    resolved = resolve_models_config(config)  # the bundle, its files checked
    # @serve.deployment turns each class into a Deployment (.options, .bind); mypy
    # keeps a decorated class's own type, hence the ignores.
    detector = Detector.options(**_options(config.detector)).bind(  # type: ignore[attr-defined]
        str(resolved.detector),
        models.device,
        resolved.detector_settings(models.detector_overrides()),
        config.detector,
        models.runtime,
    )
    classifier = Classifier.options(**_options(config.classifier)).bind(  # type: ignore[attr-defined]
        str(resolved.classifier), models.device, config.classifier, models.runtime
    )
    ingress = Ingress.options(  # type: ignore[attr-defined]
        num_replicas=config.ingress.num_replicas,
        ray_actor_options=dict(config.ingress.ray_actor_options),
        max_ongoing_requests=1000,
    )
    return ingress.bind(config, detector, classifier, resolved)


def wait_until_ready(timeout_s: float = 300.0, app_name: str = "sonorisk") -> None:
    """Block until every deployment of the app is RUNNING (raise with the reason if not)."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        status = serve.status().applications.get(app_name)
        if status is not None:
            last = f"{status.status}: {status.message}"
            if status.status == "RUNNING":
                return
            if status.status == "DEPLOY_FAILED":
                raise RuntimeError(f"deployment failed: {status.message}")
        time.sleep(0.5)
    raise TimeoutError(f"application {app_name!r} not running after {timeout_s} s ({last})")
