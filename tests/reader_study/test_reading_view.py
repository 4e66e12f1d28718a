"""The reading view in Chromium (Playwright, Debian's /usr/bin/chromium): a two-case study
done with the keyboard alone; the answer form in view without scrolling at 1280x720;
heatmaps fetched only when asked for, and the strip shown is the current clip's; the
overlay follows the case video; no horizontal scrolling at 1024x768 or 1280x720.

One study, one server (in this process) and one browser serve the whole module."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sonorisk.reader_study.store import StudyStore, default_db_url

from .conftest import CHROMIUM, RISKS, free_port, links, make_study, needs_chromium

pytestmark = needs_chromium


class ThreadServer:
    """The web app served by uvicorn in a thread of this process (starts in a second)."""

    def __init__(self, study_dir: Path) -> None:
        import uvicorn

        from sonorisk.reader_study.web import create_app

        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            create_app(study_dir),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def two_cases(
    study_inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, ThreadServer]]:
    """A two-case study (one case with a risk and a heatmap, one "no scorable lesion"),
    overlays shown, served in this process."""
    from sonorisk.data import load_dataset

    videos = load_dataset(study_inputs["dataset"]).videos
    cases = [videos[0].video_id, videos[RISKS.index(None)].video_id]
    study = make_study(
        study_inputs,
        tmp_path_factory.mktemp("reading") / "study",
        show_overlay=True,
        cases=cases,
        title="Reading view",
    )
    server = ThreadServer(study)
    yield study, server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


def open_page(browser, server: ThreadServer, link: str, width: int = 1280, height: int = 720):
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(server.base + link)
    return page


def wait_video(page) -> None:
    page.wait_for_function("() => document.getElementById('video').readyState >= 2", timeout=15000)


def frame_text(page) -> str:
    return page.text_content("#frame-counter")


def aided_page(study: Path, server: ThreadServer, browser, reader: str, **size: int):
    """``reader``'s aided step of the case with a risk (the steps before it answered in
    the store, the same answers each time)."""
    store = StudyStore.open(default_db_url(study))
    try:
        for st in store.steps(reader):
            store.save_read(reader, st.step, "3", 30)
            if store.case(st.case_id)["ai_risk"] is not None:
                number = st.step + 1
                break
    finally:
        store.close()
    page = open_page(browser, server, links(study)[reader], **size)
    page.goto(f"{server.base}/reader/{reader}/step/{number}")
    return page


def no_horizontal_scroll(page) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def test_a_two_case_study_done_with_the_keyboard_alone(two_cases, browser) -> None:
    study, server = two_cases
    page = open_page(browser, server, links(study)["R1"])
    page.goto(server.base + "/reader/R1/next")
    keys = page.keyboard
    planned = {
        0: ("3", "3", "20"),
        1: ("4b", "4B", "72"),
        2: ("5", "5", "90"),
        3: ("c", "4C", "64"),
    }
    for n, (pressed, birads, confidence) in planned.items():
        page.wait_for_url(f"**/reader/R1/step/{n}")
        aided = n % 2 == 1
        assert (page.locator("#ai-result").count() == 1) == aided
        assert no_horizontal_scroll(page)
        wait_video(page)
        assert frame_text(page).startswith("frame 1 /")
        keys.press("ArrowRight")
        page.wait_for_function(
            "() => document.getElementById('frame-counter').textContent.startsWith('frame 2 /')"
        )
        keys.press("ArrowLeft")
        page.wait_for_function(
            "() => document.getElementById('frame-counter').textContent.startsWith('frame 1 /')"
        )
        keys.press(" ")  # play
        page.wait_for_function("() => !document.getElementById('video').paused")
        keys.press(" ")  # pause
        page.wait_for_function("() => document.getElementById('video').paused")
        if aided:
            keys.press("o")
            assert page.is_visible("#overlay")
            keys.press("o")
            assert page.is_hidden("#overlay")
        for key in pressed:
            keys.press(key)
        assert page.is_checked(f"#birads-{birads}")
        keys.press("m")  # into the confidence box: keys type there, they choose nothing
        keys.type(f"{confidence}")
        assert page.is_checked(f"#birads-{birads}")
        assert page.input_value("#confidence-field") == confidence
        if n % 2:
            keys.press("Enter")  # sent from the number box
        else:
            keys.press("Escape")  # out of the box: Enter is the save key again
            keys.press("Enter")
    page.wait_for_url("**/reader/R1")
    assert page.locator("#finished").count() == 1
    store = StudyStore.open(default_db_url(study))
    try:
        reads = {
            r["step"]: (r["birads"], str(r["confidence"]))
            for r in store.reads()
            if r["reader_id"] == "R1"
        }
    finally:
        store.close()
    assert reads == {n: (b, c) for n, (_, b, c) in planned.items()}


def test_the_answer_form_is_in_view_at_1280x720(two_cases, browser) -> None:
    from playwright.sync_api import expect

    study, server = two_cases
    page = aided_page(study, server, browser, "R2")
    page.click("#heatmap-toggle")  # the tallest the page gets
    page.click("#overlay-toggle")
    for element in (
        "#read-form",
        "#submit",
        "#birads-4A",
        "#confidence",
        "#ai-risk",
        "#ai-lesions",
        "#frame-counter",
        "#case-time",
        "#keys",
    ):
        expect(page.locator(element)).to_be_in_viewport(ratio=1)
    assert page.evaluate("document.documentElement.scrollHeight <= window.innerHeight")
    # the video takes what the answer column leaves, keeping its aspect ratio
    box = page.locator("#video").bounding_box()
    assert box["width"] > 800 and box["height"] > 400
    assert page.text_content("#case-time").startswith("time on case 0:")
    # one notice line; every statement and the model card one click away
    assert page.evaluate(
        "(() => { const s = document.querySelector('#ai-notice summary');"
        " return s.getBoundingClientRect().height"
        " < 1.5 * parseFloat(getComputedStyle(s).lineHeight); })()"
    )
    assert page.locator("#ai-notice li").first.is_hidden()
    card = page.locator("#model-card").get_attribute("href")
    assert page.request.get(server.base + card).ok


def test_heatmaps_are_fetched_only_when_asked_for(two_cases, browser) -> None:
    study, server = two_cases
    page = aided_page(study, server, browser, "R2", width=1024, height=768)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/heatmap/" in r.url else None)
    page.reload()
    wait_video(page)
    assert page.is_hidden("#heatmap") and page.locator("#heatmap img").count() == 0
    page.keyboard.press("h")
    strip = page.locator("#heatmap img")
    assert strip.count() == 1 and strip.get_attribute("src").endswith("/heatmap/0.png")
    page.wait_for_function("() => document.querySelector('#heatmap img').naturalWidth > 0")
    assert len(asked) == 1
    # frame 9 lies past the one clip (frames 1-8): no strip, and it says so
    for _ in range(8):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => document.getElementById('frame-counter').textContent.startsWith('frame 9 /')"
    )
    assert page.locator("#heatmap img").count() == 0
    assert "no scored clip at frame 9" in page.text_content("#heatmap-caption")
    page.keyboard.press("h")
    assert page.is_hidden("#heatmap")


def test_overlay_follows_the_video_and_filters_leave_it_alone(two_cases, browser) -> None:
    study, server = two_cases
    page = aided_page(study, server, browser, "R2")
    wait_video(page)
    src = page.get_attribute("#video", "src")
    page.keyboard.press("o")
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => { const v = document.getElementById('video'),"
        " o = document.getElementById('overlay');"
        " return v.currentTime > 0.15 && o.readyState >= 2"
        " && Math.abs(o.currentTime - v.currentTime) < 0.02; }",
        timeout=10000,
    )
    page.keyboard.press(" ")
    page.wait_for_function("() => !document.getElementById('overlay').paused")
    page.keyboard.press(" ")
    page.wait_for_function("() => document.getElementById('overlay').paused")
    # brightness and contrast are display filters: the video file stays the same
    page.fill("#brightness", "150")
    page.dispatch_event("#brightness", "input")
    assert (
        page.evaluate("getComputedStyle(document.getElementById('video')).filter")
        == "brightness(1.5) contrast(1)"
    )
    assert page.get_attribute("#video", "src") == src


@pytest.mark.parametrize(("width", "height"), [(1024, 768), (1280, 720)])
def test_no_horizontal_scroll(two_cases, browser, width: int, height: int) -> None:
    study, server = two_cases
    page = aided_page(study, server, browser, "R2", width=width, height=height)
    page.click("#heatmap-toggle")
    assert no_horizontal_scroll(page)
    step = int(page.url.rsplit("/", 1)[1])
    for path in (f"/reader/R2/step/{step}/model", "/reader/R2/step/0", "/reader/R2", "/logout"):
        page.goto(server.base + path)
        assert no_horizontal_scroll(page), path
    page.goto(server.base + links(study)["admin"])
    assert no_horizontal_scroll(page)
