"""``sonorisk info VIDEO|IMAGE... [--crop] [--json]``: what sonorisk sees in an input.

A video: decodes every frame (so the frame count and the decode statistics
are real, not the header's claim). A still image (``sonorisk.io.still``):
reads it as ``score`` does and says its format, size, bit depth, pixel
spacing and what reading it changed. Optionally finds the scan region; goes
on with the next input when one fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from sonorisk.cli_args import positive_float, positive_int

LIVE_DEFAULT_FRAMES = 250  # a live stream never ends: read this many by default


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups["root"].add_parser(
        "info",
        help="show a video's or still image's metadata, frames, decode stats (and scan region)",
        description="Decode each VIDEO (file, DICOM cine or rtsp:// URL) and print its "
        "metadata, the frames actually decoded, frames dropped and why reading ended; for a "
        "still IMAGE (PNG, JPEG, TIFF, BMP, single-frame DICOM) its format, size, bit depth, "
        "pixel spacing and what reading it changed.",
    )
    parser.add_argument("videos", nargs="+", metavar="VIDEO|IMAGE")
    parser.add_argument(
        "--crop",
        action="store_true",
        help="also find the scan region (the ultrasound image in the screen)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--max-frames",
        type=positive_int,
        default=None,
        help=f"stop after N frames (default: all; {LIVE_DEFAULT_FRAMES} for live streams)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0,
        help="open/read timeout in seconds (default 10)",
    )
    parser.add_argument(
        "--rtsp-transport",
        choices=["udp", "tcp"],
        default=None,
        help="RTSP transport (default: FFmpeg's choice)",
    )
    parser.set_defaults(func=run_info)


def describe_video(
    source: str,
    *,
    crop: bool = False,
    max_frames: int | None = None,
    timeout_s: float = 10.0,
    rtsp_transport: str | None = None,
) -> dict[str, Any]:
    """Decode one video and summarise it; raises the typed VideoError on failure."""
    from sonorisk.io import is_live_url, open_video
    from sonorisk.io.scan_region import RegionSampler

    live = is_live_url(source)
    limit = max_frames if max_frames is not None else (LIVE_DEFAULT_FRAMES if live else None)
    # The frames `sonorisk score` finds its region from, so both report the same one.
    sampler = RegionSampler()
    # RGB as `score` decodes when the region is wanted: its gray is cv2's, not FFmpeg's.
    with open_video(
        source,
        color="rgb" if crop else "gray",
        open_timeout_s=timeout_s,
        read_timeout_s=timeout_s,
        frame_timeout_s=max(30.0, timeout_s),
        rtsp_transport=rtsp_transport,
    ) as src:
        meta = src.meta
        decoded = 0
        last_t = None
        sizes: set[tuple[int, ...]] = set()
        for frame in src:
            sizes.add(frame.image.shape[:2])
            if crop and len(sizes) == 1:
                sampler.add(frame.image)
            decoded += 1
            last_t = frame.timestamp_s
            if limit is not None and decoded >= limit:
                break
        stats = src.stats
    region = (
        _scan_region(source, sampler, sizes, stats.messages) if crop and sampler.frames else None
    )
    return {
        "source": source,
        "ok": True,
        "kind": "video",
        "meta": asdict(meta),
        "frames_decoded": decoded,
        "last_timestamp_s": last_t,
        "stopped_at_limit": limit is not None and decoded >= limit,
        "stats": stats.as_dict(),
        "scan_region": region,
    }


def describe_still(source: str, *, crop: bool = False) -> dict[str, Any]:
    """Read one still as ``score`` does and summarise it; raises ``InputError``."""
    from sonorisk.io.scan_region import crop_region, estimate_scan_region
    from sonorisk.io.still import read_still

    still = read_still(source)
    region = None
    if crop:
        found = estimate_scan_region([still.image])  # the one image `score` finds it in
        region = {**found.as_dict(), "cropped": crop_region(found) is not None}
    return {
        "source": source,
        "ok": True,
        "kind": "still",
        "still": still.describe(),
        "scan_region": region,
    }


def _scan_region(
    source: str, sampler: Any, sizes: set[tuple[int, ...]], notes: list[str]
) -> dict[str, Any]:
    """The scan region of the sampled frames; one region needs one frame size.

    ``cropped``: whether ``score`` crops to it (a region that is nearly the
    whole frame is no crop, and the score document then names none).
    """
    from sonorisk.errors import UnsupportedVideoError
    from sonorisk.io.scan_region import crop_region

    if len(sizes) > 1:
        where = next((n for n in notes if "frame size changed" in n), "")
        raise UnsupportedVideoError(
            source,
            "frame size changes within the video"
            + (f" ({where})" if where else "")
            + ": no single scan region",
        )
    region = sampler.estimate()
    return {**region.as_dict(), "cropped": crop_region(region) is not None}


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "unknown" if value is None else f"{value:{spec}}{unit}"


def _print_still(info: dict[str, Any]) -> None:
    still = info["still"]
    print(f"{info['source']}:")
    print(
        f"  still image {still['format'].upper()}, size {still['width']}x{still['height']}, "
        f"{still['bit_depth']}-bit" + (f" ({still['mode']})" if still["mode"] else "")
    )
    spacing = still["pixel_spacing_mm"]
    print(
        "  pixel spacing "
        + (f"{spacing[0]:.4g} x {spacing[1]:.4g} mm (x, y)" if spacing else "unknown")
    )
    for note in still["notes"]:
        print(f"  note: {note}")
    _print_region(info.get("scan_region"), still=True)


def _print_region(region: dict[str, Any] | None, still: bool = False) -> None:
    if region is not None:
        x1, y1, x2, y2 = region["box"]
        found = (
            "from the image alone (nothing moves in a still)"
            if still
            else f"moving {region['moving_fraction']:.0%} from the first "
            f"{region['frames_used']} frames"
        )
        print(
            f"  scan region: {region['kind']} box x1={x1} y1={y1} x2={x2} y2={y2} "
            f"({x2 - x1}x{y2 - y1}), {found}"
            + ("" if region["cropped"] else "; nearly the whole frame: score does not crop")
        )


def _print_text(info: dict[str, Any]) -> None:
    meta, stats = info["meta"], info["stats"]
    print(f"{info['source']}:")
    print(
        f"  container {meta['container']}, codec {meta['codec']}, "
        f"pixel format {meta['pixel_format'] or 'unknown'}" + (", live" if meta["is_live"] else "")
    )
    print(
        f"  size {meta['width']}x{meta['height']}, fps {_fmt(meta['fps'], '.3f')}, "
        f"duration {_fmt(meta['duration_s'], '.2f', ' s')}"
    )
    declared = meta["frame_count"]
    print(
        f"  frames: {info['frames_decoded']} decoded"
        + (f" (header says {declared})" if declared is not None else " (header gives no count)")
        + f", {stats['frames_dropped']} dropped"
    )
    end = stats["end_reason"]
    if info["stopped_at_limit"]:
        end = "stopped at --max-frames"
    print(f"  end: {end}" + (f" ({stats['error']})" if stats["error"] else ""))
    for note in stats["messages"][:5]:  # e.g. where the frame size changes
        print(f"  note: {note}")
    _print_region(info.get("scan_region"))


def run_info(args: argparse.Namespace) -> int:
    from sonorisk.errors import InputError
    from sonorisk.io.still import is_still

    results: list[dict[str, Any]] = []
    failed = 0
    for source in args.videos:
        still = is_still(source)
        try:
            if still:
                info = describe_still(source, crop=args.crop)
            else:
                info = describe_video(
                    source,
                    crop=args.crop,
                    max_frames=args.max_frames,
                    timeout_s=args.timeout,
                    rtsp_transport=args.rtsp_transport,
                )
        except InputError as exc:  # a VideoError, or a still's InputError
            failed += 1
            info = {
                "source": source,
                "ok": False,
                "error": str(exc),
                "error_type": type(exc).__name__,
            }
            if not args.json:
                print(f"{source}: error: {exc.reason} [{type(exc).__name__}]", file=sys.stderr)
        else:
            if not args.json:
                (_print_still if still else _print_text)(info)
        results.append(info)
    if args.json:
        json.dump(results, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    return 1 if failed else 0
