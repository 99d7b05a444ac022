"""The pair player component on its own in headless Chromium: the page under it posts Streamlit's render messages."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_browser import ARGS, CHROMIUM, HOLD_VIDEO_LOADS

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


def render(page, **args) -> str:
    """What Streamlit sends the component on each page run (the video as bytes, or null while it renders). Handled
    before this returns: a posted message is a task of its own, which a key pressed next could overtake. Returns what
    the player says at that moment."""
    return page.evaluate("""(args) => {
        for (const name of ["video", "video_plain"]) if (args[name]) args[name] = new Uint8Array(args[name]);
        window.dispatchEvent(new MessageEvent("message", {data: {type: "streamlit:render", args}}));
        return document.getElementById("flash").textContent;
    }""", {"pair_id": 7, "choice_slot": 0, "show_cost": True, "costs_left": [0, 1, 0], "costs_right": [0, 0, 0],
           "fps": 30, **args})


def test_a_video_that_finishes_rendering_while_the_pair_is_shown_is_loaded(player_page):
    render(player_page, video=None)
    player_page.wait_for_function("document.body.dataset.pairId === '7'")
    assert player_page.locator("video").get_attribute("src") is None
    render(player_page, video=[0, 0, 0, 24, 102, 116, 121, 112])  # the same pair, its video now ready
    player_page.wait_for_function("document.getElementById('video').getAttribute('src') !== null", timeout=30_000)
    assert player_page.locator("video").get_attribute("src").startswith("blob:")


STAND_IN = [0, 0, 0, 24, 102, 116, 121, 112]  # not a playable video: the player opens the pair on its load error


def _sent(page, at_least: int = 0) -> list[dict]:
    """What the player sent the page; with ``at_least``, once that many have arrived (a message is delivered after the
    key that sent it has been handled, so reading at once could miss it)."""
    if at_least:
        page.wait_for_function(f"window.__sent.length >= {at_least}", timeout=30_000)
    return page.evaluate("window.__sent")


def _flash(page) -> str:
    return page.locator("#flash").text_content()


def test_a_key_held_down_pressed_as_its_pair_appears_or_before_the_last_was_handled_saves_nothing_unseen(player_page):
    """A key held down judged the next pairs too (0.01–0.3 s after each appeared), a double tap the next one, and a
    key pressed before the page had handled the last choice overtook it ("1" then "u": the choice was lost and an
    older label undone). Each is now one choice, or refused in words."""
    page = player_page
    page.evaluate("""() => { window.__sent = [];
        window.addEventListener("message", (e) => {
            if (e.data && e.data.type === "streamlit:setComponentValue") window.__sent.push(e.data.value); }); }""")
    # Its video's load (here: the stand-in's load error) is held back until the key has been pressed: on two busy
    # workers the error came first now and then, and the key counted, as it should for a pair on screen.
    page.evaluate(HOLD_VIDEO_LOADS)
    render(page, pair_id=21, video=STAND_IN)
    page.keyboard.press("1")  # at once: its clips are not on screen yet
    assert _sent(page) == [] and "only just appeared: nothing was saved" in _flash(page)
    page.evaluate("() => { window.__held = false; shown(); }")  # loaded (failed to: the player opens the pair)
    page.wait_for_function("document.body.dataset.gatePair === '21'", timeout=30_000)
    for _ in range(6):  # held down: the first press, then the keyboard's repeats
        page.keyboard.down("1")
    page.keyboard.up("1")
    assert [(v["action"], v["pair_id"]) for v in _sent(page, 1)] == [("left", 21)]
    page.keyboard.press("u")  # before the page has handled the choice
    assert len(_sent(page)) == 1 and "still saving your last choice" in _flash(page)
    assert page.evaluate("document.body.dataset.pending") == "1"  # what a test waits on before its next key
    render(page, pair_id=21, video=STAND_IN, ack=_sent(page)[0]["nonce"])  # handled, on this pair (a refusal, say)
    assert page.evaluate("document.body.dataset.pending") is None
    page.keyboard.press("u")  # taken now (the refusal above stays said a moment, to be read)
    assert [v["action"] for v in _sent(page, 2)] == ["left", "undo"]
    # The next pair: a double tap's second key, pressed before its video has loaded (held back again: on two busy
    # cores the load error and MIN_LOOK_MS had passed before the key once, and the key rightly counted)
    page.evaluate("window.__held = true")
    render(page, pair_id=22, video=STAND_IN, ack=_sent(page)[1]["nonce"])
    page.keyboard.press("2")
    assert len(_sent(page)) == 2 and "only just appeared" in _flash(page)
    # loaded, and the key again at the same moment (in one script: no machine is slow enough to put MIN_LOOK_MS between)
    page.evaluate("""() => { window.__held = false; shown();
        window.dispatchEvent(new KeyboardEvent("keydown", {key: "2", bubbles: true})); }""")
    assert len(_sent(page)) == 2 and "only just appeared" in _flash(page)
    page.wait_for_function("document.body.dataset.gatePair === '22'", timeout=30_000)
    page.keyboard.press("2")
    assert [(v["action"], v["pair_id"]) for v in _sent(page, 3)][2:] == [("right", 22)]


def test_the_player_says_why_a_key_saved_nothing_and_keeps_saying_it_as_the_next_pair_comes(player_page):
    """A choice key with no pair on screen said nothing; a refusal was wiped 0.06 s later by the pair that came; the
    other rendering of the same pair (Show cost overlay) closed its choices again as if it were new; a double tap of
    U undid two labels."""
    page = player_page
    page.evaluate("window.__sent = []")
    render(page, pair_id=None, video=None, costs_left=[], costs_right=[])  # the "No pairs left" screen
    page.keyboard.press("1")
    assert _sent(page) == [] and "no pair on screen: nothing was saved" in _flash(page)
    render(page, pair_id=31, video=STAND_IN)
    page.wait_for_function("document.body.dataset.gatePair === '31'", timeout=30_000)
    render(page, pair_id=31, video=None, video_plain=STAND_IN, show_cost=False)  # its cost-free rendering
    page.keyboard.press("1")  # seen already: counts at once
    assert [(v["action"], v["pair_id"]) for v in _sent(page, 1)] == [("left", 31)]
    page.keyboard.press("2")  # before the page handled the first
    said = render(page, pair_id=32, video=STAND_IN, ack=_sent(page)[0]["nonce"])  # the next pair comes at once
    assert "still saving your last choice" in said, "said long enough to be read"
    page.wait_for_function("document.body.dataset.gatePair === '32'", timeout=30_000)
    page.keyboard.press("u")
    # The double tap's two presses come within MIN_LOOK_MS of each other, however slowly a loaded machine runs the
    # test: the page's clock stops here (two Playwright calls took over 0.3 s on two busy cores).
    page.evaluate("() => { const now = performance.now(); performance.now = () => now; }")
    render(page, pair_id=31, video=STAND_IN, ack=_sent(page, 2)[1]["nonce"])  # the undone pair, back
    page.keyboard.press("u")  # the double tap's second U
    assert [v["action"] for v in _sent(page)] == ["left", "undo"]
    assert "only just appeared" in _flash(page)


def test_the_player_redraws_once_a_frame_however_many_pairs_it_has_shown(player_page, tmp_path):
    """Every pair's video started one more frame loop (its "play" came before the last loop saw a pause), and none
    ended: 600 pairs into a session the page redrew its cost timeline 600 times a frame, and labelling slowed from
    about 70 choices a minute to 17 (scripts/soak.py). Counted as animation-frame requests per frame, which does not
    depend on how fast the machine draws."""
    import numpy as np

    from prefine_core.render import write_clip_video

    frames = (np.random.default_rng(0).random((30, 32, 32, 3)) * 255).astype(np.uint8)
    video = list(write_clip_video(list(frames), np.zeros(30), tmp_path / "clip.mp4", fps=30).read_bytes())
    page = player_page
    page.reload()
    page.evaluate("""() => {
        const request = window.requestAnimationFrame.bind(window);
        window.__requests = 0;
        window.requestAnimationFrame = (callback) => { window.__requests++; return request(callback); };
        window.__requestsPerFrame = () => new Promise((done) => {  // over 30 frames, counted by a loop of its own
            let frames = 0; const before = window.__requests;
            const count = () => (++frames < 30 ? request(count) : done((window.__requests - before) / frames));
            request(count);
        });
    }""")
    for pair_id in range(1, 7):
        render(page, pair_id=pair_id, video=video, costs_left=[0] * 30, costs_right=[0] * 30)
        page.wait_for_function(f"document.body.dataset.gatePair === '{pair_id}'", timeout=30_000)
    assert page.evaluate("!document.getElementById('video').paused"), "the video plays (else no loop runs at all)"
    assert page.evaluate("window.__requestsPerFrame()") <= 1.5


def test_the_cost_overlay_toggled_goes_on_from_the_frame_on_screen(player_page, tmp_path):
    """Show cost overlay swaps the pair's video for its cost-free rendering: it started again from the first frame,
    playing, and a person stepping through an event frame by frame lost their place."""
    import numpy as np

    from prefine_core.render import write_clip_video

    frames = (np.random.default_rng(1).random((60, 32, 32, 3)) * 255).astype(np.uint8)
    video = list(write_clip_video(list(frames), np.zeros(60), tmp_path / "clip.mp4", fps=30).read_bytes())
    page = player_page
    page.reload()
    costs = {"costs_left": [0] * 60, "costs_right": [0] * 60}
    render(page, pair_id=41, video=video, **costs)
    page.wait_for_function("document.body.dataset.gatePair === '41' && video.readyState >= 2", timeout=30_000)
    page.evaluate("""() => new Promise((done) => {  // once the player's own pause listener (registered first) has run
        video.addEventListener("pause", () => done(), {once: true}); video.pause(); })""")
    page.wait_for_function("!video.seeking", timeout=30_000)  # settled on the frame on screen
    page.evaluate("goFrame(40)")  # paused on frame 40, as the frame buttons leave it
    page.wait_for_function("!video.seeking && frameAt(video.currentTime) === 40", timeout=30_000)
    render(page, pair_id=41, video=None, video_plain=video, show_cost=False, **costs)  # the overlay off
    page.wait_for_function("video.readyState >= 2 && !video.seeking", timeout=30_000)
    assert page.evaluate("[frameAt(video.currentTime), video.paused]") == [40, True]
    render(page, pair_id=42, video=video, **costs)  # the next pair starts at its beginning, playing
    page.wait_for_function("document.body.dataset.gatePair === '42'", timeout=30_000)
    assert page.evaluate("[frameAt(video.currentTime) < 40, video.paused]") == [True, False]


def test_a_pair_drawn_again_in_another_slot_opens_that_slots_buttons(player_page):
    """A choice and then Undo, both handled before the player was sent the next pair, bring the pair on screen back in
    the next slot: the gate stayed on the old slot, and the pair's buttons took no click until a reload."""
    page = player_page
    render(page, pair_id=51, choice_slot=3, video=STAND_IN)
    page.wait_for_function("document.body.dataset.gatePair === '51' && document.body.dataset.gateSlot === '3'",
                           timeout=30_000)
    render(page, pair_id=51, choice_slot=5, video=STAND_IN)  # the same pair and video, in another slot
    assert page.evaluate("""() => [document.body.dataset.gateSlot, document.body.dataset.choiceSlot,
        document.getElementById("prefine-choice-gate").textContent.includes(".st-key-choice_left_5 button")]""") \
        == ["5", "5", True], "opened at once: the pair has been seen"
