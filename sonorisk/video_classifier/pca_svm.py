"""Deep features + PCA + RBF SVM (seed 003, Almaraz-Damian et al. 2021).

A frozen 2D CNN (ImageNet weights from a file when given) gives one feature
vector per clip (global average over frames and space); scikit-learn fits a
standardiser, PCA (404 components in the paper, capped by the data) and RBF
SVMs (C=1). Probabilities come from Platt scaling fitted on cross-validated
decision values. Two classes: one SVM (malignant vs benign); more: one SVM per
class (one-vs-rest), probabilities normalised as sklearn's OneVsRestClassifier.

After fitting, everything is copied into torch buffers and evaluated in torch
(scaler, PCA projection, RBF kernel expansion, Platt sigmoid). That keeps
checkpoints plain tensors (loaded with ``weights_only=True``, no pickles) and
makes the score differentiable, so the heatmap is Grad-CAM on the CNN's last
feature map, as in seed 003.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from sonorisk.errors import InputError
from sonorisk.records import Clip
from sonorisk.video_classifier.base import ClipClassifier
from sonorisk.video_classifier.config import ClassifierConfig
from sonorisk.video_classifier.static2d import FrameFeatures
from sonorisk.video_classifier.weights import LoadReport

_SVM_BUFFERS = (
    "feat_mean",
    "feat_scale",
    "pca_mean",
    "pca_components",
    "support_vectors",
    "dual_coef",
    "sv_owner",
    "intercept",
    "platt_a",
    "platt_b",
    "gamma",
    "fitted",
)


class PcaSvmClassifier(ClipClassifier):
    kind = "pca-svm"
    trained_by = "fit"  # scikit-learn fits it once on frozen features: no epochs

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__(config)
        self.backbone = FrameFeatures(config.model.pca_svm.backbone)
        self.backbone.requires_grad_(False)  # features are fixed; only sklearn learns
        d = self.backbone.dim
        m = 1 if self.num_classes == 2 else self.num_classes
        self.register_buffer("feat_mean", torch.zeros(d))
        self.register_buffer("feat_scale", torch.ones(d))
        self.register_buffer("pca_mean", torch.zeros(d))
        self.register_buffer("pca_components", torch.zeros(1, d))
        self.register_buffer("support_vectors", torch.zeros(1, 1))
        self.register_buffer("dual_coef", torch.zeros(1))
        self.register_buffer("sv_owner", torch.zeros(1, dtype=torch.long))
        self.register_buffer("intercept", torch.zeros(m))
        self.register_buffer("platt_a", torch.ones(m))
        self.register_buffer("platt_b", torch.zeros(m))
        self.register_buffer("gamma", torch.tensor(1.0))
        self.register_buffer("fitted", torch.tensor(False))

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # Fitted sizes (components, support vectors) are data-dependent:
        # resize the buffers to the checkpoint's before copying into them.
        for name in _SVM_BUFFERS:
            key = prefix + name
            if key in state_dict:
                setattr(self, name, torch.empty_like(state_dict[key], device=self.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def train(self, mode: bool = True) -> PcaSvmClassifier:
        super().train(mode)
        self.backbone.eval()  # frozen feature extractor: BatchNorm stays in eval mode
        return self

    # --- features and the torch decision function ----------------------------------
    def clip_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x).flatten(2).mean(dim=2)

    def decision_function(self, feats: torch.Tensor) -> torch.Tensor:
        """SVM decision values ``B x M`` (M = 1 for two classes), as sklearn's SVC."""
        if not bool(self.fitted):
            raise InputError("pca-svm", "model is not fitted: train it before scoring")
        z = (feats - self.feat_mean) / self.feat_scale
        z = (z - self.pca_mean) @ self.pca_components.T
        dist = torch.cdist(z.double(), self.support_vectors.double()).pow(2)
        kernel = torch.exp(-self.gamma.double() * dist) * self.dual_coef.double()
        m = self.intercept.numel()
        decision = torch.zeros(z.shape[0], m, dtype=torch.float64, device=z.device)
        return decision.index_add(1, self.sv_owner, kernel) + self.intercept.double()

    def _logits_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        decision = self.decision_function(feats)
        m = decision.shape[1]
        p = torch.sigmoid(self.platt_a.double() * decision + self.platt_b.double())
        p = p.clamp(1e-7, 1 - 1e-7)
        if m == 1:  # binary: the one SVM scores "malignant"
            mal = self.malignant_mask
            probs = torch.zeros(decision.shape[0], 2, dtype=torch.float64, device=decision.device)
            probs[:, mal] = p
            probs[:, ~mal] = 1 - p
        else:
            probs = p / p.sum(dim=1, keepdim=True)
        # Log-probabilities as "logits": softmax() gives back the probabilities.
        return probs.log().float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits_from_features(self.clip_features(x))

    def evidence(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = self.backbone(x).detach().requires_grad_(True)  # B x D x T x h x w
        logits = self._logits_from_features(fmap.flatten(2).mean(dim=2))
        score = logits @ self.malignancy_weights()
        (grad,) = torch.autograd.grad(score.sum(), fmap)
        alpha = grad.flatten(2).mean(dim=2)  # Grad-CAM channel weights
        maps = torch.einsum("bd,bd...->b...", alpha, fmap)  # signed: + malignant
        return logits.detach(), maps.detach()

    # --- fitting ----------------------------------------------------------------------
    @torch.no_grad()
    def features_of(
        self, clips: Sequence[Clip] | np.ndarray, batch_size: int = 16, source: str = "clips"
    ) -> np.ndarray:
        """The frozen CNN's clip features ``N x D`` (what the SVM sees) of clips
        as :meth:`predict` takes them."""
        array, _ = self.clip_array(clips, source)
        was_training = self.training
        self.eval()
        try:
            return np.concatenate(
                [
                    self.clip_features(self.to_input(array[s : s + batch_size])).cpu().numpy()
                    for s in range(0, len(array), batch_size)
                ]
            )
        finally:
            self.train(was_training)

    def fit(
        self,
        clips: Sequence[Clip] | np.ndarray,
        labels: np.ndarray,
        *,
        seed: int = 0,
        batch_size: int = 16,
    ) -> PcaSvmClassifier:
        """Fit scaler, PCA, SVM(s) and Platt scaling on the clips' features; the
        sizes found are in ``fit_report_``."""
        labels = np.asarray(labels)
        if len(clips) != len(labels) or len(clips) < 4:
            raise InputError(
                "pca-svm training data",
                f"need >= 4 labelled clips, got {len(clips)} clips / {len(labels)} labels",
            )
        self.fit_report_ = self._fit_features(self.features_of(clips, batch_size), labels, seed)
        return self

    def _fit_features(self, features: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, Any]:
        from sklearn.decomposition import PCA
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        opts = self.config.model.pca_svm
        scaler = StandardScaler().fit(features)
        xs = scaler.transform(features)
        n_comp = int(min(opts.pca_components, xs.shape[0] - 1, xs.shape[1]))
        pca = PCA(n_components=n_comp, random_state=seed).fit(xs)
        z = pca.transform(xs)
        if opts.svm_gamma == "scale":
            gamma = 1.0 / (z.shape[1] * max(float(z.var()), 1e-12))
        elif opts.svm_gamma == "auto":
            gamma = 1.0 / z.shape[1]
        else:
            gamma = float(opts.svm_gamma)
        mal = self.malignant_mask.cpu().numpy()
        if self.num_classes == 2:
            targets = [mal[labels].astype(int)]
        else:
            targets = [(labels == k).astype(int) for k in range(self.num_classes)]
        svs, coefs, owners, intercepts, pa, pb = [], [], [], [], [], []
        for k, y in enumerate(targets):
            counts = np.bincount(y, minlength=2)
            if counts.min() == 0:
                name = "malignant/benign" if len(targets) == 1 else self.class_names[k]
                raise InputError(
                    "pca-svm training data",
                    f"class {name!r} has no positive and negative clips both; cannot fit its SVM",
                )
            svc = SVC(C=opts.svm_c, kernel="rbf", gamma=gamma).fit(z, y)
            folds = int(min(opts.calibration_folds, counts.min()))
            if folds >= 2:
                cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
                dec = cross_val_predict(
                    SVC(C=opts.svm_c, kernel="rbf", gamma=gamma),
                    z,
                    y,
                    cv=cv,
                    method="decision_function",
                )
            else:  # too few clips of a class to cross-validate: in-sample (optimistic)
                dec = svc.decision_function(z)
            platt = LogisticRegression(C=1e4).fit(dec.reshape(-1, 1), y)
            svs.append(svc.support_vectors_)
            coefs.append(svc.dual_coef_[0])
            owners.append(np.full(len(svc.support_vectors_), k))
            intercepts.append(svc.intercept_[0])
            pa.append(platt.coef_[0, 0])
            pb.append(platt.intercept_[0])

        def t(a: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a), dtype=dtype, device=self.device)

        self.feat_mean = t(scaler.mean_)
        self.feat_scale = t(np.where(scaler.scale_ > 0, scaler.scale_, 1.0))
        self.pca_mean = t(pca.mean_)
        self.pca_components = t(pca.components_)
        self.support_vectors = t(np.concatenate(svs))
        self.dual_coef = t(np.concatenate(coefs))
        self.sv_owner = t(np.concatenate(owners), torch.long)
        self.intercept = t(intercepts)
        self.platt_a = t(pa)
        self.platt_b = t(pb)
        self.gamma = t(gamma)
        self.fitted = torch.tensor(True, device=self.device)
        return {
            "pca_components": n_comp,
            "pca_explained_variance": float(pca.explained_variance_ratio_.sum()),
            "support_vectors": int(self.support_vectors.shape[0]),
            "gamma": gamma,
        }

    def load_pretrained(self, path: str) -> LoadReport:
        return self.backbone.load_pretrained(self, "backbone.body.", path)
