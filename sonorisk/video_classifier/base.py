"""The one classifier interface: uint8 clips in, ClipScores (probabilities + heatmaps) out.

Every model family (I3D, TimeSformer, 2D static, features+PCA+SVM) subclasses
:class:`ClipClassifier` and implements two tensor methods on normalised float
clips ``B x C x T x H x W``:

- ``forward(x) -> logits`` (``B x K``, K = number of classes), and
- ``evidence(x) -> (logits, maps)`` where ``maps`` is ``B x t x h x w``: the
  signed evidence for malignancy at the model's own resolution (a class
  activation map for GAP heads; gradient x activation for the others).

:meth:`ClipClassifier.predict` turns ``Clip`` records (or a uint8 array
``N x T x H x W x 3``) into :class:`~sonorisk.records.ClipScore`: P(malignant)
is the summed softmax probability of the malignant classes, and the heatmap is
the evidence map resized to the clip (``T x H x W``) and mapped to [0, 1] with
0.5 neutral, above 0.5 malignant evidence (red in the paper's Fig. 6), below
0.5 benign evidence (blue).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sonorisk.errors import InputError
from sonorisk.records import Clip, ClipScore
from sonorisk.video_classifier.clips import ClipConfig
from sonorisk.video_classifier.config import ClassifierConfig
from sonorisk.video_classifier.weights import LoadReport


class ClipClassifier(nn.Module):
    """Base class; see the module docstring for the contract."""

    kind: ClassVar[str] = ""
    # buffers (register_buffer in __init__)
    malignant_mask: torch.Tensor
    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.class_names: tuple[str, ...] = tuple(config.model.classes)
        malignant = set(config.model.malignant_classes)
        mask = torch.tensor([c in malignant for c in self.class_names], dtype=torch.bool)
        self.register_buffer("malignant_mask", mask, persistent=False)
        mean = torch.tensor(config.model.mean, dtype=torch.float32).view(1, 3, 1, 1, 1)
        std = torch.tensor(config.model.std, dtype=torch.float32).view(1, 3, 1, 1, 1)
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)
        # Provenance, filled by the builder/trainer and saved in checkpoints;
        # checkpoint_info (training data, metrics) is filled by load_classifier.
        self.provenance: dict[str, Any] = {}
        self.checkpoint_info: dict[str, Any] = {}
        self.fit_report_: dict[str, Any] = {}  # what fit() found (one-pass kinds)

    # How ``sonorisk.video_classifier.train`` trains this kind: "epochs" of gradient
    # descent on augmented clips, or one call to :meth:`fit` (no gradients: pca-svm).
    trained_by: ClassVar[Literal["epochs", "fit"]] = "epochs"

    # --- what subclasses implement ---------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def evidence(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def load_pretrained(self, path: str) -> LoadReport:
        """Load ``config.model.weights`` (a local file) into the model; say what fitted."""
        raise InputError(path, f"{self.kind!r} classifiers take no pretrained weights file")

    def fit(
        self,
        clips: Sequence[Clip] | np.ndarray,
        labels: np.ndarray,
        *,
        seed: int = 0,
        batch_size: int = 16,
    ) -> Self:
        """Fit in one pass on the clips :meth:`predict` takes and their class indices,
        and return the model, as a scikit-learn estimator does (``trained_by = "fit"``).
        What the fit found is left in ``fit_report_``. Kinds trained by gradient
        descent are trained by ``sonorisk.video_classifier.train`` instead."""
        raise NotImplementedError(
            f"{self.kind!r} classifiers are trained in epochs "
            "(sonorisk.video_classifier.train), not by fit()"
        )

    def training_batch(self, clips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """What one training step sees of a batch of clips (all of them; a 2D
        model draws single frames)."""
        return clips

    # --- shared helpers --------------------------------------------------------------
    @property
    def clip_config(self) -> ClipConfig:
        """How clips must be cut for this model (the pipeline's ``ClipScorer`` reads it)."""
        return self.config.clips

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def malignancy_weights(self) -> torch.Tensor:
        """Per-class weights whose dot with class logits is the malignant evidence.

        +1/n_malignant for malignant classes, -1/n_benign for the others: for a
        binary model this is logit(malignant) - logit(benign), whose sign is the
        decision, so the map's positive part is malignant evidence.
        """
        mask = self.malignant_mask.float()
        return mask / mask.sum() - (1 - mask) / (1 - mask).sum()

    def malignant_probability(self, logits: torch.Tensor) -> torch.Tensor:
        probs = logits.float().softmax(dim=1)
        return probs[:, self.malignant_mask].sum(dim=1)

    def expected_shape(self) -> tuple[int, int, int, int]:
        size = self.config.clips.crop_size
        return (self.config.clips.length, size, size, 3)

    def validate_clips(self, clips: np.ndarray, source: str = "clips") -> None:
        """Clear errors for what the models cannot score (shape, dtype, empty)."""
        t, h, w, c = self.expected_shape()
        want = f"uint8 array N x {t} x {h} x {w} x {c}"
        if not isinstance(clips, np.ndarray):
            raise InputError(source, f"expected {want}, got {type(clips).__name__}")
        if clips.ndim != 5:
            raise InputError(source, f"expected {want}, got shape {clips.shape}")
        if clips.shape[0] == 0:
            raise InputError(source, "empty batch: no clips to score")
        if clips.dtype != np.uint8:
            raise InputError(source, f"expected {want}, got dtype {clips.dtype}")
        if clips.shape[1:] != (t, h, w, c):
            raise InputError(
                source,
                f"expected {want}, got shape {clips.shape} (clips must be built with this "
                f"model's clip config: length {t}, crop_size {h})",
            )

    def clip_array(
        self, clips: Sequence[Clip] | np.ndarray, source: str = "clips"
    ) -> tuple[np.ndarray, list[Clip] | None]:
        """The uint8 array of ``clips`` (``Clip`` records or an array), checked
        against this model's clip config, and the records when given."""
        records: list[Clip] | None = None
        if isinstance(clips, np.ndarray):
            array = clips
        else:
            records = list(clips)
            if not records:
                raise InputError(source, "empty batch: no clips to score")
            bad = [i for i, c in enumerate(records) if not isinstance(c, Clip)]
            if bad:
                raise InputError(source, f"items {bad[:5]} are not Clip records")
            try:
                array = np.stack([c.crops for c in records])
            except ValueError as exc:
                raise InputError(source, f"clips of different shapes in one batch ({exc})") from exc
        self.validate_clips(array, source)
        return array, records

    def to_unit(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``N x T x H x W x 3`` -> float ``N x 3 x T x H x W`` in [0, 1]."""
        x = torch.as_tensor(clips, device=self.device)
        return x.permute(0, 4, 1, 2, 3).float().div_(255.0)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.pixel_mean) / self.pixel_std

    def to_input(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``N x T x H x W x 3`` -> normalised float ``N x 3 x T x H x W``."""
        return self.normalize(self.to_unit(clips))

    @staticmethod
    def heatmap_to_clip(maps: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
        """Signed ``B x t x h x w`` evidence -> ``B x T x H x W`` in [0, 1], 0.5 neutral."""
        up = F.interpolate(
            maps.unsqueeze(1).float(), size=size, mode="trilinear", align_corners=False
        ).squeeze(1)
        scale = up.flatten(1).abs().amax(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        return (0.5 + 0.5 * up / scale).clamp_(0.0, 1.0)

    def score_batch(
        self, x: torch.Tensor, heatmaps: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Logits, the evidence maps (when asked for) and the lesion-check
        logits (None: the model has no lesion check) of one normalised batch."""
        if heatmaps:
            with torch.enable_grad():
                logits, maps = self.evidence(x)
            return logits, maps, None
        with torch.no_grad():
            return self(x), None, None

    # Mixed precision at inference: float16 autocast on CUDA (about twice the
    # clips per second on tensor cores); the CPU always runs float32.
    amp: ClassVar[bool] = True

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    # --- the public entry point --------------------------------------------------------
    def predict(
        self,
        clips: Sequence[Clip] | np.ndarray,
        heatmaps: bool = True,
        batch_size: int = 16,
        source: str = "clips",
    ) -> list[ClipScore]:
        """Score clips: the one call the pipeline, server and evaluation use."""
        array, records = self.clip_array(clips, source)
        was_training = self.training
        self.eval()
        out: list[ClipScore] = []
        try:
            for start in range(0, len(array), batch_size):
                chunk = self.to_input(array[start : start + batch_size])
                with self.autocast():
                    logits, maps, lesion = self.score_batch(chunk, heatmaps)
                hm_np = None
                if maps is not None:
                    t, h, w = chunk.shape[2:]
                    hm = self.heatmap_to_clip(maps.detach(), (t, h, w))
                    hm_np = hm.cpu().numpy().astype(np.float32)
                lesion_np = (
                    torch.sigmoid(lesion.float()).cpu().numpy() if lesion is not None else None
                )
                logits = logits.detach()
                probs = logits.float().softmax(dim=1).cpu().numpy()
                p_mal = self.malignant_probability(logits).cpu().numpy()
                for i in range(len(chunk)):
                    k = start + i
                    rec = records[k] if records is not None else None
                    out.append(
                        ClipScore(
                            track_id=rec.track_id if rec else -1,
                            clip_index=rec.clip_index if rec else k,
                            frame_indices=rec.frame_indices if rec else (),
                            probability=float(p_mal[i]),
                            class_probabilities={
                                name: float(probs[i, j]) for j, name in enumerate(self.class_names)
                            },
                            heatmap=hm_np[i] if hm_np is not None else None,
                            lesion_probability=(
                                float(lesion_np[i]) if lesion_np is not None else None
                            ),
                        )
                    )
        finally:
            self.train(was_training)
        return out


class GAPHead(nn.Module):
    """Dropout + linear on globally average-pooled features (so CAMs are exact)."""

    def __init__(self, in_features: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)

    @staticmethod
    def pool(features: torch.Tensor) -> torch.Tensor:
        """``B x D x ...`` -> ``B x D``: global average pooling (both heads read it)."""
        return features.flatten(2).mean(dim=2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.pool(features)))

    def cam(self, features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Class activation map of the class combination ``weights`` (K,).

        Because the head is linear after GAP, the mean of this map over
        (t, h, w) equals ``weights @ (logits - bias)``: the map decomposes the
        clip's malignant evidence over space and time (Zhou et al. 2016).
        """
        w = weights.to(self.fc.weight.dtype) @ self.fc.weight  # (D,)
        return torch.einsum("d,bd...->b...", w, features)


class GAPClassifier(ClipClassifier):
    """A feature extractor (``features``: ``B x D x t x h x w``) and a :class:`GAPHead`
    (``self.head``): logits, and the exact class activation map as evidence."""

    head: GAPHead
    lesion_head: nn.Linear | None  # set by make_heads

    def make_heads(self, feature_dim: int, dropout: float) -> None:
        """The malignancy head, and the lesion check when the config asks for one."""
        self.head = GAPHead(feature_dim, self.num_classes, dropout)
        self.lesion_head = nn.Linear(feature_dim, 1) if self.config.model.lesion_check else None

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x D``: the globally pooled features both heads read."""
        with torch.no_grad():
            return GAPHead.pool(self.features(x))

    def score_batch(
        self, x: torch.Tensor, heatmaps: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        # One pass through the trunk feeds the malignancy head, its CAM and the
        # lesion check (CAMs of a linear head after GAP need no gradient).
        with torch.no_grad():
            feats = self.features(x)
            logits = self.head(feats)
            maps = self.head.cam(feats, self.malignancy_weights()) if heatmaps else None
            lesion = None
            lesion_head = getattr(self, "lesion_head", None)
            if lesion_head is not None:
                lesion = lesion_head(GAPHead.pool(feats)).squeeze(1)
        return logits, maps, lesion

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def evidence(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            feats = self.features(x)
            logits = self.head(feats)
            maps = self.head.cam(feats, self.malignancy_weights())
        return logits, maps
