"""TimeSformer (the paper's dynamic comparator) from Hugging Face ``transformers``.

Built from a ``TimesformerConfig`` (never downloaded); pretrained weights load
from a local directory saved by ``save_pretrained`` or a state dict file. The
public Kinetics TimeSformer/VideoMAE weights on the hub are CC-BY-NC, so no
default points at them.

Heatmap: gradient x (token - mean token) on the patch tokens entering the last
encoder layer, a first-order estimate of how much each token moves the malignant
score. The tokens leaving the last layer cannot be used: only the CLS token
reaches the classifier, so their gradient is zero.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sonorisk.errors import InputError
from sonorisk.extras import import_extra
from sonorisk.video_classifier.base import ClipClassifier
from sonorisk.video_classifier.config import ClassifierConfig
from sonorisk.video_classifier.weights import LoadReport, load_matching, read_state_dict


class TimesformerClassifier(ClipClassifier):
    kind = "timesformer"

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__(config)
        # The [timesformer] extra: a clear error naming it when it is missing.
        hf = import_extra("transformers", "timesformer")
        TimesformerConfig = hf.TimesformerConfig  # noqa: N806 - the library's class names
        TimesformerForVideoClassification = hf.TimesformerForVideoClassification  # noqa: N806

        opts = config.model.timesformer
        # transformers 5's signature omits PretrainedConfig's num_labels (4.x: **kwargs)
        self.hf_config = TimesformerConfig(  # type: ignore[call-arg, unused-ignore]
            image_size=config.clips.crop_size,
            patch_size=opts.patch_size,
            num_channels=3,
            num_frames=config.clips.length,
            hidden_size=opts.hidden_size,
            num_hidden_layers=opts.num_hidden_layers,
            num_attention_heads=opts.num_attention_heads,
            intermediate_size=opts.intermediate_size,
            hidden_dropout_prob=opts.dropout,
            attention_probs_dropout_prob=opts.dropout,
            attention_type=opts.attention_type,
            num_labels=self.num_classes,
        )
        self.net = TimesformerForVideoClassification(self.hf_config)
        self.grid = config.clips.crop_size // opts.patch_size

    @staticmethod
    def _pixels(x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 1, 3, 4)  # B x C x T x H x W -> HF's B x T x C x H x W

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=self._pixels(x)).logits

    def evidence(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net.timesformer(pixel_values=self._pixels(x), output_hidden_states=True)
        tokens = out.hidden_states[-2]  # input of the last layer: B x (1 + N*T) x D
        logits = self.net.classifier(out.last_hidden_state[:, 0])
        score = logits @ self.malignancy_weights().to(logits.dtype)
        (grad,) = torch.autograd.grad(score.sum(), tokens)
        patches, patch_grad = tokens[:, 1:], grad[:, 1:]  # drop CLS
        # First-order effect of replacing each token by the clip's mean token:
        # signed like the CAMs (+ malignant), unlike plain grad x activation,
        # whose sign follows the arbitrary sign of residual-stream activations.
        baseline = patches.mean(dim=1, keepdim=True)
        saliency = (patch_grad * (patches - baseline)).sum(dim=-1)
        b, t, g = x.shape[0], x.shape[2], self.grid
        # transformers orders patch tokens patch-major: index = patch * T + frame.
        maps = saliency.reshape(b, g * g, t).permute(0, 2, 1).reshape(b, t, g, g)
        return logits.detach(), maps.detach()

    def load_pretrained(self, path: str) -> LoadReport:
        p = Path(path)
        if p.is_dir():
            TimesformerForVideoClassification = import_extra(  # noqa: N806
                "transformers", "timesformer"
            ).TimesformerForVideoClassification

            try:
                other = TimesformerForVideoClassification.from_pretrained(p, local_files_only=True)
            except (OSError, ValueError) as exc:
                raise InputError(p, f"not a saved TimeSformer model directory ({exc})") from exc
            state = {f"net.{k}": v for k, v in other.state_dict().items()}
        else:
            raw = read_state_dict(p)
            state = {(k if k.startswith("net.") else f"net.{k}"): v for k, v in raw.items()}
        # The classifier of a pretrained model has other classes: dropped by shape.
        return load_matching(self, state, str(p), "transformers timesformer state dict")
