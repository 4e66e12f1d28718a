"""Augmentation suited to ultrasound stills and frames (numpy + OpenCV, pure).

Ultrasound differs from photographs: gain/TGC changes brightness and contrast,
speckle is multiplicative, the probe can be mirrored (left/right) but never
flipped upside down (the skin line stays at the top), and focus/resolution
varies (blur). Each transform takes an HxWxC uint8 image and an Nx4 float box
array (xyxy, pixels) and returns new ones.
"""

from __future__ import annotations

import cv2
import numpy as np

from sonorisk.data.calipers import draw_calipers, random_caliper_box
from sonorisk.detector.config import AugmentConfig


def hflip(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = image.shape[1]
    flipped = image[:, ::-1].copy()
    out = boxes.copy()
    if len(out):
        out[:, 0] = width - boxes[:, 2]
        out[:, 2] = width - boxes[:, 0]
    return flipped, out


def rescale(image: np.ndarray, boxes: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    height, width = image.shape[:2]
    new_w, new_h = max(1, round(width * factor)), max(1, round(height * factor))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if resized.ndim == 2:
        resized = resized[:, :, None]
    scale = np.array(
        [new_w / width, new_h / height, new_w / width, new_h / height], dtype=np.float32
    )
    return resized, (boxes * scale).astype(np.float32)


def gain_contrast_gamma(
    image: np.ndarray, gain: float, contrast: float, gamma: float
) -> np.ndarray:
    img = image.astype(np.float32) / 255.0
    mean = float(img.mean())
    img = (img - mean) * contrast + mean
    img = np.clip(img * gain, 0.0, 1.0) ** gamma
    return (img * 255.0 + 0.5).astype(np.uint8)


def speckle(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative speckle: I * (1 + sigma * n), n ~ N(0,1), one field for all channels."""
    noise = rng.standard_normal(image.shape[:2]).astype(np.float32)[:, :, None]
    img = image.astype(np.float32) * (1.0 + sigma * noise)
    return np.clip(img, 0, 255).astype(np.uint8)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    out = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)
    return out[:, :, None] if out.ndim == 2 else out


def augment(
    image: np.ndarray, boxes: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One random draw of every transform; boxes are clipped to the new image."""
    if image.ndim == 2:
        image = image[:, :, None]
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if rng.random() < cfg.hflip_p:
        image, boxes = hflip(image, boxes)
    low, high = cfg.scale_range
    if high > low or low != 1.0:
        image, boxes = rescale(image, boxes, float(rng.uniform(low, high)))
    image = gain_contrast_gamma(
        image,
        float(rng.uniform(*cfg.gain_range)),
        float(rng.uniform(*cfg.contrast_range)),
        float(rng.uniform(*cfg.gamma_range)),
    )
    if rng.random() < cfg.speckle_p:
        image = speckle(image, cfg.speckle_sigma * float(rng.random()), rng)
    if rng.random() < cfg.blur_p:
        image = blur(image, float(rng.uniform(0.3, max(cfg.blur_sigma_max, 0.31))))
    height, width = image.shape[:2]
    # Last, as a scanner burns calipers over the processed image: neither gain
    # nor speckle touches them.
    if cfg.calipers_p and rng.random() < cfg.calipers_p:
        place = random_caliper_box(height, width, rng)
        image = draw_calipers(image, place, line=bool(rng.random() < 0.5))
    if len(boxes):
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        keep = (boxes[:, 2] - boxes[:, 0] >= 2) & (boxes[:, 3] - boxes[:, 1] >= 2)
        boxes = boxes[keep]
    return np.ascontiguousarray(image), boxes
