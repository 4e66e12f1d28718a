"""Scoring speed with the released models on 1920x1080, 30 fps screen captures.

Two inputs, made here: a screen-capture sweep of a held-out BUSI still
(configs/release/heldout_groups.txt, never trained on) and one of the
malignant phantom. For each, measured side by side in one run, each
measurement in a fresh process (so its peak memory is its own):

- decode only: the ceiling of any pipeline (frames/s);
- `sonorisk score` with the CPU profile: configs/pipeline-cpu.yaml (scan-region
  crop, keyframes every 6th frame, every other clip, batched models working
  in background threads while frames are tracked) with `--runtime onnx-int8`
  (the detector in 8-bit integers on ONNX Runtime): the real-time factor
  (video seconds / wall seconds);
- the same profile with the other runtimes (`--runtimes`, default
  onnx-int8,onnx,torch), to show what each runtime gives;
- a naive pipeline with the same models in torch (every frame detected at
  full size, no crop, batch 1, one clip at a time, one thing at a time) on the
  first --naive-frames frames, and the CPU profile's speed-up over it;
- the live schedule (`schedule: when_free`, a live stream's rules) unpaced: no
  frame waits for the detector, which runs on whichever frames it is free for
  (--no-live skips it). Not the CPU profile: fewer frames are detected and the
  answer depends on the machine's speed.

Beside every rate: the clips the classifier scored, the scored lesions and
the peak resident memory of the process. A rate is refused (exit status 2)
when the classifier scored no clip of a lesion video: a pipeline whose
classifier never ran is not fast, it is idle. A video whose tracks were all
judged candidates (no risk) keeps its rate, with that said beside it: its
clips were classified all the same.

    python benchmarks/score.py [--models NAME|DIR] [--seconds 30] [--naive-frames 90]
        [--runtimes onnx-int8,onnx,torch] [--no-live]
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUSI = REPO.parent / "shared" / "data" / "busi"


@dataclass(frozen=True)
class Measured:
    what: str
    frames: int
    wall_s: float
    clips: int  # clips the classifier scored (candidates' clips included)
    scored_lesions: int
    risk: float | None
    peak_rss_mb: float
    note: str = ""
    keyframes: int = 0  # frames the detector's boxes were applied to

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _decode(video: str, threads: int) -> Measured:
    from sonorisk.io import open_video

    started = time.perf_counter()
    with open_video(video) as source:
        n = sum(1 for _ in source)
    return Measured("decode only", n, time.perf_counter() - started, 0, 0, None, _peak_rss_mb())


def _profile(
    video: str,
    models_spec: str | None,
    threads: int,
    runtime: str = "torch",
    schedule: str = "in_order",
) -> Measured:
    from sonorisk.config import load_config
    from sonorisk.models import load_models
    from sonorisk.pipeline.config import PipelineConfig
    from sonorisk.pipeline.document import ScoreDocument
    from sonorisk.pipeline.score_file import score_file
    from sonorisk.threads import set_torch_threads

    set_torch_threads(threads)
    cpu = load_config(PipelineConfig, REPO / "configs" / "pipeline-cpu.yaml")
    if schedule == "when_free":
        # The live schedule, unpaced: frames as fast as tracking goes, the
        # detector on whichever frames it is free for (a live stream's rules).
        cpu.schedule, cpu.crop_wait, cpu.detector_batch_size = "when_free", False, 1
    models = load_models(models_spec, runtime=runtime)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        doc = score_file(video, models, cpu, out, progress=False)
        wall = time.perf_counter() - started
    timing = doc["timing"]["stages"]
    what = f"CPU profile, {runtime}"
    if schedule == "when_free":
        what = f"live schedule, unpaced, {runtime}"
    return Measured(
        what,
        doc["video"]["frames_scored"],
        wall,
        int(timing["clips"]),
        ScoreDocument.from_json(doc).summary().scored_lesions,
        doc["risk"],
        _peak_rss_mb(),
        doc.get("reason") or "",
        int(timing["keyframes"]),
    )


def _naive(video: str, models_spec: str | None, threads: int, frames: int) -> Measured:
    from sonorisk.io import open_video
    from sonorisk.models import load_models
    from sonorisk.pipeline.config import PipelineConfig
    from sonorisk.pipeline.scorer import IncrementalScorer
    from sonorisk.threads import set_torch_threads

    set_torch_threads(threads)
    with open_video(video) as source:
        full = max(source.meta.width, source.meta.height)
        short = min(source.meta.width, source.meta.height)
    # The same models, inference at the full frame size.
    models = load_models(models_spec, detector_overrides={"min_size": short, "max_size": full})
    config = PipelineConfig(
        detector_batch_size=1, classifier_batch_size=1, crop="none", overlap=False
    )
    config.tracking.keyframe_interval = 1
    started = time.perf_counter()
    with open_video(video) as source:
        scorer = IncrementalScorer(models.detector, models.classifier, config, fps=source.meta.fps)
        n = 0
        for frame in itertools.islice(source, frames):
            scorer.push(frame)
            n += 1
        scorer.finish()
    wall = time.perf_counter() - started
    result = scorer.result()
    scored = sum(1 for r in result.lesions if not r.candidate and r.scores)
    return Measured(
        f"naive, first {n} frames",
        n,
        wall,
        result.timing.clips,
        scored,
        result.risk,
        _peak_rss_mb(),
        result.reason or "",
    )


def in_fresh_process(fn, *args) -> Measured:  # noqa: ANN001
    """Run one measurement in a new process: its own peak memory, no warm caches."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def make_inputs(work: Path, seconds: float) -> list[tuple[str, Path]]:
    from sonorisk.data.synth import synthesize_from_stills, synthesize_phantom

    inputs = []
    busi = work / "busi"
    if not (busi / "videos.csv").is_file():
        print(
            f"synthesizing a {seconds:g} s 1920x1080 screen capture of a held-out BUSI still ...",
            flush=True,
        )
        held = (REPO / "configs" / "release" / "heldout_groups.txt").read_text().split()
        synthesize_from_stills(
            BUSI,
            1,
            busi,
            seed=5,
            groups=held,
            labels=["malignant"],
            seconds=seconds,
            screen_capture="linear",
        )
    inputs.append(("BUSI held-out still, screen capture", next((busi / "videos").glob("*.avi"))))
    phantom = work / "phantom"
    if not (phantom / "videos.csv").is_file():
        print(
            f"synthesizing a {seconds:g} s 1920x1080 screen capture of the phantom ...", flush=True
        )
        synthesize_phantom(
            1,
            phantom,
            seed=7,
            seconds=seconds,
            size=(480, 360),
            screen_capture="linear",
            proportions={"malignant": 1},
        )
    inputs.append(("malignant phantom, screen capture", next((phantom / "videos").glob("*.avi"))))
    return inputs


def refusal(m: Measured) -> str | None:
    """Why a rate must not be printed for a lesion video (None: it may).

    A lesion video whose classifier scored no clip measures an idle pipeline.
    One whose tracks were all judged candidates did the same work as one that
    scored them (their clips are classified for the lesion check), so its rate
    stands; the missing risk is an accuracy finding, printed beside it."""
    if m.clips == 0:
        return f"the classifier scored no clip ({m.note or 'no lesion found'})"
    return None


def accuracy_note(m: Measured) -> str:
    """What to say beside a rate whose video got no risk."""
    if m.scored_lesions == 0 and m.clips > 0:
        return f"no scored lesion, clips of candidates only: {m.note or 'no risk'}"
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models",
        metavar="NAME|DIR",
        help="model bundle NAME or folder (default: the default bundle)",
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--naive-frames", type=int, default=90)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="keep the videos here")
    parser.add_argument(
        "--runtimes",
        default="onnx-int8,onnx,torch",
        help="the CPU profile with each of these runtimes; the first gives the "
        "headline real-time factor (default: onnx-int8,onnx,torch)",
    )
    parser.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also the live schedule (when_free) unpaced: the detector on whichever "
        "frames it is free for, so fewer detector frames (default: on)",
    )
    args = parser.parse_args()

    from sonorisk.io import open_video
    from sonorisk.models import resolve_models
    from sonorisk.runtime import RUNTIMES

    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if not runtimes or unknown:
        parser.error(f"--runtimes: choose from {', '.join(RUNTIMES)} (got {args.runtimes!r})")
    resolved = resolve_models(args.models)  # a clear error when no bundle is installed
    print(f"models: {resolved.label()}", flush=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="sonorisk-bench-"))
    refused = []
    for name, video in make_inputs(work, args.seconds):
        with open_video(video) as source:
            fps = source.meta.fps or 30.0
            size = f"{source.meta.width}x{source.meta.height}"
        decode = in_fresh_process(_decode, str(video), args.threads)
        profiles = [
            in_fresh_process(_profile, str(video), args.models, args.threads, runtime)
            for runtime in runtimes
        ]
        profile = profiles[0]
        live = (
            in_fresh_process(
                _profile, str(video), args.models, args.threads, runtimes[0], "when_free"
            )
            if args.live
            else None
        )
        naive = in_fresh_process(_naive, str(video), args.models, args.threads, args.naive_frames)
        print()
        print(
            f"{name}: {video.name}, {decode.frames} frames, {size}, {fps:g} fps "
            f"({decode.frames / fps:.1f} s), {args.threads} threads"
        )
        print(f"  {'what':32s} {'frames/s':>9s} {'clips':>6s} {'lesions':>8s} {'peak MB':>8s}")
        for m in (decode, *profiles, live, naive):
            if m is None:
                continue
            why = refusal(m) if m is not decode else None
            rate = "refused" if why else f"{m.fps:9.2f}"
            said = why or (accuracy_note(m) if m is not decode else "")
            print(
                f"  {m.what:32s} {rate:>9s} {m.clips:6d} {m.scored_lesions:8d} "
                f"{m.peak_rss_mb:8.0f}" + (f"  ({said})" if said else "")
            )
        whys = [w for w in (*map(refusal, profiles), refusal(naive)) if w]
        if whys:
            refused.append(name)
            print(
                f"  no rate: {'; '.join(whys)}. A lesion video that scores no clip "
                "measures an idle classifier."
            )
            continue
        print(
            f"  real-time factor, CPU profile ({runtimes[0]}): "
            f"{decode.frames / fps / profile.wall_s:.2f} (target >= 2)"
        )
        print(f"  CPU profile / decode-only rate: {profile.fps / decode.fps:.2f}")
        print(f"  speed-up over naive: {profile.fps / naive.fps:.1f}x (target >= 10)")
        for other in profiles[1:]:
            print(
                f"  real-time factor, {other.what}: {decode.frames / fps / other.wall_s:.2f} "
                f"({profile.fps / other.fps:.2f}x slower than {runtimes[0]}; risk {other.risk} "
                f"against {profile.risk})"
            )
        if live is not None and not refusal(live):
            print(
                f"  real-time factor, live schedule unpaced: "
                f"{decode.frames / fps / live.wall_s:.2f} "
                f"(detector on {live.keyframes} of {live.frames} frames; "
                f"risk {live.risk} against {profile.risk}; not the CPU profile: fewer frames "
                "detected, results depend on the machine)"
            )
        note = accuracy_note(profile)
        print(
            f"  risk {profile.risk} ({profile.scored_lesions} scored lesion(s), "
            f"{profile.clips} clips)" + (f": {note}" if note else "")
        )
    if refused:
        print(f"\nrefused to print rates for: {', '.join(refused)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
