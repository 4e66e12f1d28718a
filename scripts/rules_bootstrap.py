"""How much the lesion rules' held-out figures hang on which development sweeps fitted them.

The rules (``python -m sonorisk.eval.lesion_rules``: the monotone confidence
fit and the threshold) are refitted on bootstrap resamples of the development
videos, and every refit is applied, as fitted, to held-out runs and to
out-of-scope runs (videos with no lesion to find, e.g. the real lung clips).
Every run must be a ``sonorisk batch`` output with every track scored
(configs/release/pipeline-development.yaml).

    python scripts/rules_bootstrap.py --dev RUN DATASET [--dev ...] \\
        [--groups GROUPS_TXT] --held RUN DATASET [--held ...] \\
        [--out-of-scope RUN] [--n 200] [--seed 0]

``--groups``: only development videos of these groups (e.g. split B of
scripts/e2e_release.sh, the split the released rules were fitted on).
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np

from sonorisk.eval.lesion_rules import (
    DevVideo,
    choose,
    dev_lesion,
    fit_confidence,
    operating_point,
    read_run,
    verdicts,
)


def read_out_of_scope(run: str) -> list[DevVideo]:
    """Videos with no lesion to find: every track is a false one."""
    videos = []
    for path in sorted(Path(run).glob("*.json")):
        entries = json.loads(path.read_text())["lesions"]
        lesions = tuple(dev_lesion(entry, False, path) for entry in entries)
        videos.append(DevVideo(path.stem, "out of scope", lesions))
    return videos


def given_risk(videos: list[DevVideo], model, threshold: float) -> int:  # noqa: ANN001
    return sum(any(x.scored for x in verdicts(v, model, threshold)) for v in videos)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dev", nargs=2, action="append", required=True, metavar=("RUN", "DATASET"))
    p.add_argument("--groups", type=Path, help="only development videos of these groups")
    p.add_argument("--held", nargs=2, action="append", required=True, metavar=("RUN", "DATASET"))
    p.add_argument("--out-of-scope", action="append", default=[], metavar="RUN")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    groups = set(args.groups.read_text().split()) if args.groups else None
    dev = [v for run, root in args.dev for v in read_run(Path(run), Path(root), groups=groups)]
    held = [v for run, root in args.held for v in read_run(Path(run), Path(root))]
    outside = [v for run in args.out_of_scope for v in read_out_of_scope(run)]
    print(f"development videos {len(dev)}, held-out {len(held)}, out of scope {len(outside)}")

    model = fit_confidence(dev)
    threshold = choose(dev, model)[0]["min_confidence"]
    point = operating_point(held, model, threshold)
    print(f"fit on all of them: {model}, threshold {threshold}")
    print(
        f"  held out: exactly one {point['exactly_one']:.3f}, given a risk "
        f"{point['with_risk']:.3f}, false per lesion-free "
        f"{point['scored_per_lesion_free_sweep']:.3f}; out of scope given a risk "
        f"{given_risk(outside, model, threshold)} of {len(outside)}"
    )

    rng = np.random.default_rng(args.seed)
    rows = []
    for _ in range(args.n):
        sample = [dev[i] for i in rng.integers(0, len(dev), len(dev))]
        model = fit_confidence(sample)
        threshold = choose(sample, model)[0]["min_confidence"]
        point = operating_point(held, model, threshold)
        rows.append(
            (
                threshold,
                given_risk(outside, model, threshold),
                point["exactly_one"],
                point["with_risk"],
                point["scored_per_lesion_free_sweep"],
            )
        )
    r = np.array(rows, dtype=float)
    q = [0.05, 0.5, 0.95]
    print(f"{args.n} bootstrap refits (seed {args.seed}); 5th / 50th / 95th percentiles:")
    names = (
        "threshold",
        "out of scope given a risk",
        "held out: exactly one",
        "given a risk",
        "false lesions per lesion-free sweep",
    )
    for k, name in enumerate(names):
        print(f"  {name}: {' / '.join(f'{v:.3f}' for v in np.quantile(r[:, k], q))}")
    if outside:
        print(
            f"  refits giving at least one out-of-scope video a risk: {(r[:, 1] >= 1).mean():.2f}"
        )
        by = collections.defaultdict(list)
        for row in rows:
            by[row[0]].append(row[1] >= 1)
        for t in sorted(by):
            print(f"    threshold {t:.2f}: {sum(by[t])} of {len(by[t])} refits")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
