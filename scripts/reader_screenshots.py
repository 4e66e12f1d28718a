"""Screenshots of the reader study's reading view for docs/reader-study.md.

    python scripts/reader_screenshots.py [--demo DIR] [--out docs/img]

Makes a two-case study (overlays shown) from the output of `sonorisk demo` (its videos
and scores; run when --demo is not given), serves it with `sonorisk reader-study serve`,
and has Chromium (Playwright, /usr/bin/chromium) read the first case as a reader would
at 1280x720: the unaided page, then the aided page with the overlay and the heatmap of
the current clip shown. Writes reader-unaided.png and reader-aided.png, reduced to a
palette so that each stays well under 300 KB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
SIZE = {"width": 1280, "height": 720}
MAX_BYTES = 300_000


def demo_outputs(demo: Path | None, work: Path) -> Path:
    if demo is None:
        demo = work / "demo"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "sonorisk.cli",
                "demo",
                "--out",
                str(demo),
                "--threads",
                "1",
                "--no-progress",
            ],
            check=True,
        )
    return demo


def make_study(demo: Path, work: Path) -> Path:
    """Two lesion videos that have heatmaps; R1 reads them."""
    import json

    from sonorisk.reader_study.create import StudyConfig, create_study

    with_heatmaps = sorted(
        p.stem
        for p in (demo / "scores").glob("*.json")
        if any(
            clip.get("heatmap")
            for lz in json.loads(p.read_text())["lesions"]
            for clip in lz["clips"]
        )
    )
    from sonorisk.data import load_dataset

    ids = [
        v.video_id
        for v in load_dataset(demo / "videos").videos
        if Path(v.file).stem in with_heatmaps
    ][:2]
    readers = work / "readers.csv"
    readers.write_text("reader_id,name\nR1,Reader One\n")
    create_study(
        demo / "videos",
        demo / "scores",
        readers,
        work / "study",
        config=StudyConfig(title="Demo reader study", show_overlay=True, cases=ids),
    )
    return work / "study"


def serve(study: Path, port: int = 8765) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sonorisk.cli",
            "reader-study",
            "serve",
            str(study),
            "--port",
            str(port),
        ]
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):
                return proc, base
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the study server did not start")


def lesion_frame(study: Path) -> int:
    """A frame in the middle clip with a heatmap of R1's first case."""
    from sonorisk.reader_study.ai_panel import read_score_document
    from sonorisk.reader_study.store import StudyStore, default_db_url

    store = StudyStore.open(default_db_url(study))
    try:
        case = store.case(store.steps("R1")[0].case_id)
    finally:
        store.close()
    clips = read_score_document(study / case["ai_document"]).heatmap_clips
    clip = clips[len(clips) // 2]
    return (clip.first_frame + clip.last_frame) // 2


def shoot(page: Any, path: Path) -> None:
    """A PNG reduced to 128 colours (the view is mostly grey), under MAX_BYTES."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    for colours in (128, 64, 32):
        image.quantize(colours, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size < MAX_BYTES:
            break
    print(f"{path}: {path.stat().st_size // 1000} KB")


def read_first_case(base: str, link: str, frame: int, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    seek = (
        "f => { const v = document.getElementById('video');"
        " v.currentTime = (f + 0.5) / parseFloat(document.getElementById('viewer')"
        ".dataset.fps); }"
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_context(viewport=SIZE).new_page()
        page.goto(base + link)
        page.goto(base + "/reader/R1/next")
        page.wait_for_function("() => document.getElementById('video').readyState >= 2")
        page.evaluate(seek, frame)
        page.keyboard.press("4")  # as a reader would: 4, then A, B or C
        page.wait_for_timeout(300)
        shoot(page, out / "reader-unaided.png")
        page.keyboard.press("b")
        page.keyboard.press("m")
        page.keyboard.type("70")
        page.keyboard.press("Enter")
        page.wait_for_url("**/step/1")
        page.wait_for_function("() => document.getElementById('video').readyState >= 2")
        page.evaluate(seek, frame)
        page.keyboard.press("o")
        page.keyboard.press("h")
        page.wait_for_function(
            "() => document.querySelector('#heatmap img')?.complete"
            " && document.getElementById('overlay').readyState >= 2"
        )
        page.wait_for_timeout(500)
        shoot(page, out / "reader-aided.png")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--demo", type=Path, help="a `sonorisk demo` output folder (default: run the demo)"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    from sonorisk.reader_study.create import read_links

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        study = make_study(demo_outputs(args.demo, work), work)
        proc, base = serve(study)
        try:
            read_first_case(
                base, read_links(study / "links.txt")["R1"], lesion_frame(study), args.out
            )
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
