"""Could a check of the input itself tell breast ultrasound like BUSI from other input?

A probe, not a feature (docs/end-to-end.md, "No input check"): each frame is
embedded as the bundled detector sees it (scan region, its own input scale; the
FPN maps averaged over space, 1280 numbers); a PCA of the training groups' stills
is the reference, and a video's distance is the median over 8 frames of how far
its embeddings lie from that PCA subspace (the reconstruction residual). Printed
for held-out stills, held-out sweeps with and without a lesion, 1920x1080 screen
captures, the real lung clips and (with --extra) any other videos.

    OMP_WAIT_POLICY=PASSIVE python scripts/input_check_probe.py [--extra DIR ...] [--threads N]

(~6 min with --threads 2 on an idle 2-core machine. The wait policy is read when
torch loads, which this script does before sonorisk could set it.)
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

# isort: off
import sonorisk  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)

# isort: on
import av
import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.decomposition import PCA

from sonorisk.data.splits import read_id_lines
from sonorisk.io.scan_region import REGION_SAMPLE, crop_region, estimate_scan_region
from sonorisk.models.load import load_detector_file
from sonorisk.models.resolve import resolve_models
from sonorisk.threads import set_torch_threads

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--busi", default=str(REPO.parent / "shared/data/busi"))
    p.add_argument("--sweeps", default=str(REPO / "runs/release"), help="scripts/release.sh output")
    p.add_argument("--screen", default=str(REPO / "runs/e2e_v2/heldout_screen_sweeps"))
    p.add_argument("--lung", default=str(REPO.parent / "shared/data/real_ultrasound_video"))
    p.add_argument("--extra", nargs="*", default=[], help="folders of other videos")
    p.add_argument("--components", type=int, nargs="*", default=[8, 16, 32])
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: other jobs share the cores)"
    )
    args = p.parse_args()
    set_torch_threads(args.threads)
    detector = load_detector_file(resolve_models(None).detector)
    model = detector.model

    def embed(image: np.ndarray) -> np.ndarray:
        shrunk = detector._shrink(image)
        tensor = torch.from_numpy(np.ascontiguousarray(shrunk)).permute(2, 0, 1).float() / 255
        with torch.inference_mode():
            batch, _ = model.transform([tensor])
            maps = model.backbone(batch.tensors)
        return torch.cat([m.mean(dim=(2, 3))[0] for m in maps.values()]).numpy()

    def video(path: str, n: int = 8, every: int = 6) -> np.ndarray:
        frames = []
        with av.open(path) as container:
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) >= max(REGION_SAMPLE, n * every):
                    break
        region = crop_region(estimate_scan_region(frames[:REGION_SAMPLE]))
        out = []
        for image in frames[::every][:n]:
            if region is not None:
                x1, y1, x2, y2 = region.box
                image = image[y1:y2, x1:x2]
            out.append(embed(image))
        return np.asarray(out)

    manifest = pd.read_csv(f"{args.busi}/manifest.csv")
    held = set(read_id_lines(REPO / "configs/release/heldout_groups.txt"))
    manifest["held"] = manifest.group.astype(str).isin(held)

    def stills(rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(
            [
                embed(np.asarray(Image.open(f"{args.busi}/{r.label}/{r.id}.png").convert("RGB")))
                for r in rows.itertuples()
            ]
        )

    train = stills(manifest[~manifest.held])
    held_stills = stills(manifest[manifest.held])
    videos = {
        "held-out sweeps": sorted(glob.glob(f"{args.sweeps}/heldout_sweeps/videos/*.avi"))[::3],
        "lesion-free sweeps": sorted(
            glob.glob(f"{args.sweeps}/heldout_normal_sweeps/videos/*.avi")
        )[::2],
        "screen captures": sorted(glob.glob(f"{args.screen}/videos/*.avi"))[::6],
        "real lung clips": sorted(glob.glob(f"{args.lung}/*")),
        **{f"extra {d}": sorted(glob.glob(f"{d}/*")) for d in args.extra},
    }
    embedded = {name: [video(f) for f in files] for name, files in videos.items() if files}
    # Half the training stills fit the PCA; the other half says what "typical" is.
    order = np.random.default_rng(0).permutation(len(train))
    fit, reference = train[order[: len(train) // 2]], train[order[len(train) // 2 :]]
    for k in args.components:
        pca = PCA(k).fit(fit)

        def residual(x: np.ndarray, pca: PCA = pca) -> np.ndarray:
            return np.linalg.norm(x - pca.inverse_transform(pca.transform(x)), axis=1)

        print(
            f"PCA {k}: training stills (not fitted) median {np.median(residual(reference)):.1f}, "
            f"99th pct {np.percentile(residual(reference), 99):.1f}; held-out stills 99th pct "
            f"{np.percentile(residual(held_stills), 99):.1f}"
        )
        for name, arrays in embedded.items():
            per_video = np.asarray([np.median(residual(a)) for a in arrays])
            print(
                f"  {name:20s} n={len(per_video):3d}  video distance min {per_video.min():.1f}"
                f"  median {np.median(per_video):.1f}  max {per_video.max():.1f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
