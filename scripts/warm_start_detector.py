"""The bundled detector written as a training checkpoint, so that `sonorisk train
detector --resume` continues from it under another config (scripts/gpu_detector.sh,
scripts/caliper_detector.sh).

    python3 scripts/warm_start_detector.py CONFIG OUT [--epochs-left N] [--ema-updates N]
        [--from DETECTOR]

--from starts from another detector file instead (a run's last.pt or best.pt, a
bundle's detector), for example a detector trained on stills that the video
recipe is to continue (scripts/caliper_free_detector.sh).

By default --resume then trains all the config's epochs, from epoch 0 with a
fresh optimiser. With --epochs-left N it trains only the config's last N epochs
(their learning rates), as if the bundled detector were the run so far; with
--ema-updates M the weights seed the EMA, which counts M updates already (at full
decay), as the release's video recipe continued the bundled detector. The
config's model section must be the starting detector's (backbone, sizes,
anchors): a checkpoint of one architecture under another's config would fail far
from here, on load.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sonorisk.config import load_config
from sonorisk.detector.checkpoint import save_checkpoint
from sonorisk.detector.config import DetectorConfig
from sonorisk.models.load import load_detector_file
from sonorisk.models.resolve import resolve_models

# Training-only settings a warm start may change (ImageNet weights are not
# loaded when weights come from a checkpoint; norm layers are frozen either way).
MAY_DIFFER = ("pretrained", "norm")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="the detector training config to continue under")
    parser.add_argument("out", help="the checkpoint to write (a run folder's last.pt)")
    parser.add_argument(
        "--epochs-left", type=int, default=None, help="train only the config's last N epochs"
    )
    parser.add_argument(
        "--ema-updates", type=int, default=None, help="EMA updates already made (default: none)"
    )
    parser.add_argument(
        "--from",
        dest="source",
        default=None,
        help="the detector file to start from (default: the bundled detector)",
    )
    args = parser.parse_args(argv)

    cfg = load_config(DetectorConfig, args.config)
    epoch = -1  # the last epoch done: none
    if args.epochs_left is not None:
        if not 1 <= args.epochs_left <= cfg.train.epochs:
            sys.exit(f"--epochs-left must be 1..{cfg.train.epochs}, got {args.epochs_left}")
        epoch = cfg.train.epochs - 1 - args.epochs_left
    if args.source is None:
        resolved = resolve_models(None)  # the default bundle
        path = resolved.detector
        name = f"{resolved.bundle.name} {resolved.bundle.version}" if resolved.bundle else "bundled"
    else:
        path = Path(args.source)
        if not path.is_file():
            sys.exit(f"--from: no detector file at {path}")
        name = str(path.parent)
    detector = load_detector_file(path)  # the detector alone: no PyAV needed
    start = detector.config.model
    differs = sorted(
        k
        for k in vars(cfg.model)
        if k not in MAY_DIFFER and getattr(cfg.model, k) != getattr(start, k)
    )
    if differs:
        sys.exit(f"{args.config}: model section differs from the {name} detector's: {differs}")
    extra: dict[str, object] = {"iteration": 0, "best_ap50": -1.0}
    if args.ema_updates is not None:
        # The starting weights are an EMA already: they seed both the average and
        # the raw weights the optimiser moves.
        extra.update(
            iteration=args.ema_updates,
            train_state_dict=detector.model.state_dict(),
            ema_updates=args.ema_updates,
        )
    save_checkpoint(
        args.out,
        model=detector.model,
        config=cfg,
        weights_source={"kind": "file", "name": f"{name} detector ({path.name})"},
        epoch=epoch,
        extra=extra,
    )
    print(f"warm start: {name} detector -> {args.out} (last epoch done: {epoch})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
