"""Pipeline configuration (``configs/pipeline*.yaml``) and what ``score`` and
``batch`` run: the pipeline's keys plus a ``models`` section (and, for
``batch``, a ``batch`` section).

Profiles are pipeline YAMLs shipped inside the package (``pipeline/profiles/``),
so an installed wheel has them too: wherever a pipeline YAML is asked for
(``--config`` of score and batch, ``pipeline`` of serve), ``cpu``, ``gpu`` or
``live-replay`` names one (:func:`pipeline_yaml`).

``ModelsConfig`` is the ``models`` section of every verb that scores (``score``,
``batch``, ``serve``): the same keys and flags (``--models``, ``--detector``,
``--classifier``, ``--device``, ``--runtime``, ``--detector-min-size``,
``--detector-tta``) everywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sonorisk.errors import ConfigError
from sonorisk.io.scan_region import REGION_SAMPLE
from sonorisk.pipeline.lesions import LesionRules
from sonorisk.tracking.config import TrackingConfig

PROFILE_DIR = Path(__file__).with_name("profiles")
# The profile names: the YAML files shipped in PROFILE_DIR (what each is for is
# said in its first lines and in docs/pipeline.md).
PROFILES = tuple(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))


def pipeline_yaml(spec: str | Path) -> Path:
    """The pipeline YAML that ``spec`` names: a profile (``cpu``, ``gpu``,
    ``live-replay``) unless a file of that name exists here, else a path."""
    text = str(spec)
    if text in PROFILES and not Path(text).is_file():
        return PROFILE_DIR / f"{text}.yaml"
    path = Path(spec)
    if not path.is_file() and not path.suffix and "/" not in text:
        # A bare word that is no file: most likely a mistyped profile name.
        raise ConfigError(
            text, f"no such file, and not a profile (profiles: {', '.join(PROFILES)})"
        )
    return path


@dataclass
class PipelineConfig:
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # Keyframes are detected in batches of this many (1: lowest latency, live).
    detector_batch_size: int = 4
    # Clips are scored in batches of this many; the rest at the end of the video.
    classifier_batch_size: int = 8
    # Heatmaps cost a backward pass per batch (CAM for I3D is nearly free).
    heatmaps: bool = False
    # Scan-region crop (sonorisk.io.scan_region): "auto" finds the ultrasound
    # image inside a screen capture from the first ``crop_sample`` frames and
    # the detector sees only that; boxes are reported in source pixels.
    # `sonorisk info --crop` samples the same default count (RegionSampler).
    crop: Literal["auto", "none"] = "auto"
    crop_sample: int = REGION_SAMPLE
    # While the region is estimated: True holds the first ``crop_sample``
    # frames until it is known (files: the detector sees every frame at its
    # trained scale); False detects them on the whole frame meanwhile and crops
    # from then on (live streams: the first boxes do not wait ~0.5 s).
    crop_wait: bool = True
    # When the models run. "in_order" (files, the default): every keyframe is
    # detected before its frame is tracked, clips are scored in batches:
    # deterministic, and as slow as the models. "when_free" (live streams): no
    # frame waits for a model. Every frame is tracked at once by optical flow;
    # the detector runs in the background on the newest frame whenever it is
    # idle (at most every ``tracking.keyframe_interval`` frames), and its boxes
    # are carried forward by flow to the frame where they arrive; clips are
    # scored in the background as they come. Results then depend on how fast
    # the machine is (docs/performance.md).
    schedule: Literal["in_order", "when_free"] = "in_order"
    # in_order only: the models work in background threads while the frames
    # before them are tracked: the next batch of keyframes is detected while
    # the batch before it is tracked, and clips are scored while tracking goes
    # on. The same results as one thing at a time (the same calls, applied in
    # the same order), faster on a machine with more than one core; events
    # come one detector batch later. False: one thing at a time (the lowest
    # box latency for an in_order stream).
    overlap: bool = True
    # Files only: feed frames no faster than ``pace`` times the video's frame
    # rate (1.0: as a live feed arrives); null: as fast as they decode. With
    # ``schedule: when_free`` this measures on files what a live stream gets
    # (configs/pipeline-live-replay.yaml).
    pace: float | None = None
    # Frames between the starts of a lesion's clips; null: the classifier's own
    # (8 for 8-frame clips: every frame in one clip, the paper's). 16 scores
    # every other clip, half the classifier's work (the CPU profile); frames
    # that fall in no clip are not even cropped.
    clip_stride: int | None = None
    # From tracks to lesions: duplicates, lesion confidence, the video risk rule.
    lesions: LesionRules = field(default_factory=LesionRules)
    # Memory one video may need (sonorisk.pipeline.budget: about 1.25 GB plus
    # 3 bytes a pixel for each frame these settings hold, plus 46): larger
    # frames are refused on the first frame with the reason. 4096 MB admits
    # about 4250x4250 with the defaults, 3000x3000 with the CPU profile; null:
    # no limit.
    memory_budget_mb: float | None = 4096.0

    def validate(self) -> None:
        self.lesions.validate()
        if self.schedule not in ("in_order", "when_free"):
            raise ConfigError(
                "pipeline.schedule", f"must be in_order or when_free, got {self.schedule!r}"
            )
        if self.pace is not None and not self.pace > 0:
            raise ConfigError("pipeline.pace", f"must be > 0 (or null), got {self.pace}")
        if self.detector_batch_size < 1:
            raise ConfigError(
                "pipeline.detector_batch_size", f"must be >= 1, got {self.detector_batch_size}"
            )
        if self.classifier_batch_size < 1:
            raise ConfigError(
                "pipeline.classifier_batch_size", f"must be >= 1, got {self.classifier_batch_size}"
            )
        if self.memory_budget_mb is not None and self.memory_budget_mb <= 0:
            raise ConfigError(
                "pipeline.memory_budget_mb",
                f"must be > 0 (or null: no limit), got {self.memory_budget_mb}",
            )
        if self.clip_stride is not None and self.clip_stride < 1:
            raise ConfigError(
                "pipeline.clip_stride", f"must be >= 1 (or null), got {self.clip_stride}"
            )
        if self.crop_sample < 1:
            raise ConfigError("pipeline.crop_sample", f"must be >= 1, got {self.crop_sample}")
        if self.tracking.keyframe_interval < 1:
            raise ConfigError(
                "pipeline.tracking.keyframe_interval",
                f"must be >= 1, got {self.tracking.keyframe_interval}",
            )


@dataclass
class ModelsConfig:
    """Which models score, and how they run (resolved by ``sonorisk.models.resolve_models``)."""

    # A bundle NAME[@VERSION] or folder (or a folder with detector.pt and
    # classifier.pt); None: the default bundle.
    bundle: str | None = None
    # Checkpoint files that override the bundle's (both given: no bundle needed).
    detector: str | None = None
    classifier: str | None = None
    device: str = "cpu"  # cpu | cuda | auto
    detector_min_size: int | None = None  # detector input short side at inference (px)
    # Test-time augmentation: the detector also sees each frame mirrored and the
    # two views' boxes are fused (twice the detector time). None: the detector
    # file's own setting.
    detector_tta: bool | None = None
    # torch | onnx: ONNX Runtime on the CPU | onnx-int8: onnx with an int8
    # detector (sonorisk.runtime)
    runtime: str = "torch"

    def validate(self, source: str = "models") -> None:
        from sonorisk.runtime import RUNTIMES, is_onnx

        if self.runtime not in RUNTIMES:
            raise ConfigError(
                f"{source}.runtime", f"must be one of {list(RUNTIMES)}, got {self.runtime!r}"
            )
        if is_onnx(self.runtime) and self.device not in ("cpu", "auto"):
            raise ConfigError(
                f"{source}.runtime",
                f"{self.runtime} runs on the CPU only ({source}.device is {self.device!r})",
            )
        if self.detector_min_size is not None and self.detector_min_size < 1:
            raise ConfigError(
                f"{source}.detector_min_size",
                f"must be >= 1 (or null: the model's), got {self.detector_min_size}",
            )

    def detector_overrides(self) -> dict[str, int | bool] | None:
        """What the detector's own config gives way to at load time."""
        return detector_overrides(self.detector_min_size, self.detector_tta)


def detector_overrides(min_size: int | None, tta: bool | None) -> dict[str, int | bool] | None:
    """The detector settings a run replaces (None: none): input size, flip TTA."""
    overrides: dict[str, int | bool] = {}
    if min_size:
        overrides["min_size"] = min_size
    if tta is not None:
        overrides["tta_hflip"] = tta
    return overrides or None


@dataclass
class ScoreConfig(PipelineConfig):
    """``sonorisk score --config``: a pipeline YAML, optionally with a ``models``
    section (so every pipeline file is a score config as it is)."""

    models: ModelsConfig = field(default_factory=ModelsConfig)

    def validate(self) -> None:
        super().validate()
        self.models.validate()

    def pipeline(self) -> PipelineConfig:
        """The pipeline keys alone (what the scorer and the score document read)."""
        return PipelineConfig(
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(PipelineConfig)}
        )


@dataclass
class BatchOptions:
    """The ``batch`` section: how ``sonorisk batch`` spreads the work."""

    workers: int | None = None  # local worker processes; None: usable CPUs / threads
    threads: int = 1  # torch threads per worker
    # Seconds one video may take in a local worker; 0 or null: no limit.
    file_timeout_s: float | None = 3600.0
    ray_address: str | None = None  # a Ray cluster ('auto', 'HOST:PORT'); None: local

    def validate(self, source: str = "batch") -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"{source}.workers", f"must be >= 1, got {self.workers}")
        if self.threads < 1:
            raise ConfigError(f"{source}.threads", f"must be >= 1, got {self.threads}")
        if self.file_timeout_s is not None and self.file_timeout_s < 0:
            raise ConfigError(
                f"{source}.file_timeout_s",
                f"must be >= 0 (0 or null: no limit), got {self.file_timeout_s}",
            )


@dataclass
class BatchConfig(ScoreConfig):
    """``sonorisk batch --config``: a score config with a ``batch`` section."""

    batch: BatchOptions = field(default_factory=BatchOptions)

    def validate(self) -> None:
        super().validate()
        self.batch.validate()
