"""The pair player component on its own in headless Chromium: the page under it posts Streamlit's render messages."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_browser import ARGS, CHROMIUM

pytestmark = pytest.mark.slow
PLAYER = Path(__file__).resolve().parents[2] / "prefine_core" / "components" / "pair_player" / "index.html"


@pytest.fixture(scope="module")
def player_page():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM} (./studio test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page()
        page.goto(PLAYER.as_uri())
        yield page
        browser.close()


def render(page, **args) -> None:
    """What Streamlit sends the component on each page run (the video as bytes, or null while it renders)."""
    page.evaluate("""(args) => {
        for (const name of ["video", "video_plain"]) if (args[name]) args[name] = new Uint8Array(args[name]);
        window.postMessage({type: "streamlit:render", args}, "*");
    }""", {"pair_id": 7, "show_cost": True, "costs_left": [0, 1, 0], "costs_right": [0, 0, 0], "fps": 30, **args})


def test_a_video_that_finishes_rendering_while_the_pair_is_shown_is_loaded(player_page):
    render(player_page, video=None)
    player_page.wait_for_function("document.body.dataset.pairId === '7'")
    assert player_page.locator("video").get_attribute("src") is None
    render(player_page, video=[0, 0, 0, 24, 102, 116, 121, 112])  # the same pair, its video now ready
    player_page.wait_for_function("document.getElementById('video').getAttribute('src') !== null", timeout=5_000)
    assert player_page.locator("video").get_attribute("src").startswith("blob:")
