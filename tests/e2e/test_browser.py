"""End to end in headless Chromium: label five pairs by keyboard, undo one, fine-tune, compare.

The app runs as a real ``streamlit run`` subprocess on a temporary workspace; Playwright drives
Debian's chromium. Screenshots of every step land in ``test-artifacts/``, and the choice →
next-pair latency measured in the browser is written to ``test-artifacts/latency.json``.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from conftest import CHEETAH
from prefine_core.task_words import task_title

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("PREFINE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(root: Path):
    """``streamlit run app.py`` on the workspace in ``root``; yields its URL."""
    port = free_port()
    env = dict(os.environ, PREFINE_WORKSPACE=str(root), MUJOCO_GL="egl")
    env.pop("PREFINE_DB_URL", None)
    log = open(root / "streamlit.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                              cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 90
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.time() > deadline:  # said here, not as a puzzling failure later
                server.kill()
                log.close()
                raise RuntimeError(f"the app did not start on port {port}: {(root / 'streamlit.log').read_text()[-2000:]}")
            time.sleep(0.3)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """A small prepared workspace (8 pairs of 100-step clips) and the app serving it."""
    from prefine_core.demo import prepare_pairs
    from prefine_core.workspace import Workspace

    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM} (./studio test installs it)")
    root = tmp_path_factory.mktemp("e2e-ws")
    ws = Workspace.open(root)
    prepare_pairs(ws, CHEETAH, {"seeds": [0, 1], "max_steps": 100, "clip_length": 100, "pairs": 8}, lambda *a: None)
    with serving(root) as url:
        yield url, ws


@pytest.fixture(scope="module")
def page():
    """One headless Chromium page for the module's tests (each test opens the app it needs in it)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM} (./studio test installs it)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


#: The pair player's frame in the Label page (a CSS selector).
PLAYER = 'iframe[title="prefine_core.components.pair_player"]'
#: JavaScript: the player's body, or null while the frame is not there.
PLAYER_BODY = f"""(() => {{ const f = document.querySelector('{PLAYER}');
    return f && f.contentDocument && f.contentDocument.body; }})()"""


def player(page):
    return page.frame_locator(PLAYER)


def wait_for_player(page, condition: str, arg=None, timeout: float | None = None) -> None:
    """Wait until ``condition`` holds: a JavaScript expression of the player's body ``b`` (there) and ``arg``."""
    page.wait_for_function(f"(arg) => {{ const b = {PLAYER_BODY}; return !!b && !!({condition}); }}", arg=arg,
                           timeout=timeout)


#: JavaScript (of ``b``, the player's body): it shows a pair, and has had that pair's clips on screen a moment.
SHOWN = "b.dataset.pairId && b.dataset.gatePair === b.dataset.pairId"


def judgeable(page) -> str:
    """The pair the player shows, once a key may judge it: its clips on screen a moment (``data-gate-pair``), and no
    choice waiting for the page (``data-pending``: the pair just judged stays on screen until the next one is drawn)."""
    wait_for_player(page, f"{SHOWN} && !b.dataset.pending")
    return player(page).locator("body[data-pair-id]").get_attribute("data-pair-id")


def sign_in(page, name: str):
    """On the Label page: give the annotator's name; returns the player's body, once it shows a pair."""
    page.get_by_label("Your name", exact=True).fill(name)
    page.get_by_label("Your name", exact=True).press("Enter")
    body = player(page).locator("body[data-pair-id]")
    body.wait_for()
    return body


def test_label_five_by_keyboard_undo_finetune_compare(app_url, page):
    from prefine_core.prefine import config_fields

    url, ws = app_url
    page.goto(url)
    page.get_by_text("PREFINE Studio").first.wait_for()
    shot(page, "1-home")

    page.get_by_role("link", name="Label").first.click()
    sign_in(page, "e2e-ada")
    player(page).locator("video[src]").wait_for(state="attached")
    shot(page, "2-label")
    page.get_by_text("Show cost overlay").click()
    player(page).locator("#stage.nocost, video[src]").first.wait_for()
    page.wait_for_timeout(500)
    shot(page, "2b-label-cost-hidden")
    page.get_by_text("Show cost overlay").click()
    # the overlay's video back in the player and its first frame on screen: the rerun that brings it must not land
    # in the middle of the playback checks below (on a busy machine it did, reloading the video under them)
    page.frame(url=re.compile(r".*pair_player.*")).wait_for_function(
        "String(shownKey).endsWith(':video:video') && video.readyState >= 2", timeout=60_000)
    # During playback the control bar names the frame on screen (the one whose step the clip shows burned in),
    # not currentTime's, which runs about a frame ahead of it.
    seen = page.frame(url=re.compile(r".*pair_player.*")).evaluate("""async () => {
        const v = document.getElementById("video"), label = document.getElementById("step"), seen = [];
        await v.play();
        await new Promise((done) => {
            const check = (now, meta) => {
                seen.push([Number(label.textContent.split(" ")[1]), Math.floor(meta.mediaTime * fps() + 1e-3)]);
                if (seen.length < 30 && !v.paused) v.requestVideoFrameCallback(check); else done();
            };
            v.requestVideoFrameCallback(check);
        });
        v.pause();
        const pauses = [];  // and a pause stops on the frame on screen, which the bar then names
        const framePresented = () => new Promise((done) => v.requestVideoFrameCallback(() => done()));
        for (const wait of [170, 230, 290, 350, 410]) {
            // each from the clip's start: the clip loops (100 frames), and a pause in the moment it went back to its
            // start has no frame on screen yet (a CI run's third pause landed there, after ~3 s of playing)
            if (v.currentTime > 0) {
                const sought = new Promise((done) => v.addEventListener("seeked", done, {once: true}));
                v.currentTime = 0;
                await sought;
            }
            await v.play();
            await framePresented();  // after a seek nothing is on screen until the first frame is (slow machines)
            await new Promise((done) => setTimeout(done, wait));
            const onScreen = presented;
            const paused = new Promise((done) => v.addEventListener("pause", done, {once: true}));
            v.pause();
            await paused;  // the player's own pause listener, registered first, has run: it may have started a seek
            if (v.seeking) await new Promise((done) => v.addEventListener("seeked", done, {once: true}));
            await new Promise((done) => requestAnimationFrame(() => done()));
            pauses.push([onScreen, Number(label.textContent.split(" ")[1]), frameAt(v.currentTime)]);
        }
        return {seen, pauses};
    }""")
    seen, pauses = seen["seen"], seen["pauses"]
    assert len(seen) >= 10 and all(shown == on_screen for shown, on_screen in seen), seen
    assert all(on_screen == shown == current for on_screen, shown, current in pauses), pauses

    latencies, labelled = [], []
    for _ in range(5):
        before = judgeable(page)
        page.get_by_role("heading", name="Label").click()  # focus the app page, not an input
        start = time.perf_counter()
        page.keyboard.press("ArrowLeft")
        wait_for_player(page, "b.dataset.pairId && b.dataset.pairId !== arg", arg=before, timeout=60_000)
        latencies.append(time.perf_counter() - start)
        labelled.append(int(before))
    browser_ms = page.evaluate(f"() => document.querySelector('{PLAYER}').contentWindow.__prefineLatency")
    shot(page, "3-labelled-five")
    judgeable(page)  # an undo too waits for the pair on screen to have been seen (a double tap of U undid two)
    page.keyboard.press("u")
    wait_for_player(page, "b.dataset.pairId === arg", arg=str(labelled[-1]), timeout=60_000)
    shot(page, "4-undone")
    labels = ws.store.effective_labels(CHEETAH)
    mine = labels[labels.annotator == "e2e-ada"]
    assert sorted(mine.pair_id) == sorted(labelled[:4]) and set(mine.choice) == {"left"}
    (ARTIFACTS / "latency.json").write_text(json.dumps(
        {"choice_to_next_pair_s": latencies, "max_s": max(latencies), "last_in_browser_ms": browser_ms}, indent=1))
    # Each next pair came (within wait_for_function's 10 s); how fast is measured where timings belong, by
    # scripts/soak.py and scripts/bench_load.py into BENCHMARKS.md (p50 0.20 s, p95 0.49 s in the 50-minute soak).
    # A bound of 1 s here failed on two busy cores (1.33 s) with nothing wrong.

    page.get_by_role("link", name="Fine-tune").first.click()
    labels = {f["name"]: f["label"] for f in config_fields()}  # "Training steps (steps)": what the form says
    for name, value in {"steps": "40", "eval_every": "20", "segment_length": "20"}.items():
        page.get_by_label(labels[name], exact=True).fill(value)
    page.get_by_text("More settings").click()
    page.get_by_label(labels["log_every"], exact=True).fill("5")
    page.get_by_label(labels["eval_episodes"], exact=True).fill("1")
    page.get_by_role("button", name="Launch").click()
    page.locator(".js-plotly-plot").first.wait_for(timeout=90_000)
    shot(page, "5-finetune-curves")
    run = ws.store.list_runs(CHEETAH)[0]
    deadline = time.time() + 180
    while ws.store.get_run(run.id).status in ("queued", "running") and time.time() < deadline:
        time.sleep(1)
    run = ws.store.get_run(run.id)
    assert run.status == "done", run.error
    page.get_by_text("Trade-off: every checkpoint").wait_for(timeout=30_000)  # the page redraws once the run ends
    page.locator(".js-plotly-plot").last.scroll_into_view_if_needed()
    shot(page, "6-finetune-done")

    from prefine_core import jobs

    other = 60 - jobs.result(ws, run.id)["selected_step"]  # the checkpoint at 20 or 40 the trainer did not choose
    page.get_by_text("Trade-off: every checkpoint").click()
    picker = page.get_by_label("Checkpoint (step)")
    picker.scroll_into_view_if_needed()
    deadline = time.time() + 60
    while True:  # a click during the expander's opening animation focuses the select without opening it
        picker.click()
        try:  # (its options can take a moment to be drawn: looking at once and closing it again never saw them)
            page.get_by_role("option").first.wait_for(timeout=3_000)
            break
        except PlaywrightTimeout:
            assert time.time() < deadline, "the checkpoint list did not open"
    # A finished run's page is drawn once and does not refresh itself, so the list opened at once stays open. (The
    # live view's fragment used to draw the finished view first, and the whole page drew it again up to 2 s later,
    # closing the list.)
    page.wait_for_timeout(5000)
    assert page.get_by_role("option").count() >= 2
    page.keyboard.type(str(other))  # the select filters its options by what is typed
    page.get_by_role("option", name=str(other), exact=True).click()
    page.get_by_role("button", name="Use this checkpoint as a policy").click()
    page.get_by_text(re.compile(rf"Step {other} is policy \d+")).wait_for(timeout=30_000)
    page.wait_for_timeout(2500)  # a refresh of the job board later, the confirmation is still there
    page.get_by_text(re.compile(rf"Step {other} is policy \d+")).wait_for(timeout=1_000)
    shot(page, "6b-checkpoint-chosen")
    [mine] = [p for p in ws.store.list_policies(CHEETAH) if p.provenance.get("chosen_by") == "user"]
    assert mine.provenance == {"run_id": run.id, "step": other, "chosen_by": "user"}

    page.get_by_role("link", name="Compare").first.click()
    page.get_by_label("Episodes", exact=True).fill("1")
    page.get_by_label("Episodes", exact=True).press("Enter")
    page.get_by_role("button", name="Evaluate both on the same seeds").click()
    page.get_by_text("Same seed").wait_for(timeout=180_000)
    page.locator("video").first.wait_for()
    shot(page, "7-compare")

    page.get_by_role("link", name="Data").first.click()
    page.get_by_text("Agreement").first.click()
    page.get_by_text("Judgements").first.wait_for()
    shot(page, "8-data-agreement")


def test_keys_work_on_across_a_pair_without_video_and_its_videos_render_on_request(tmp_path, page):
    """A pair whose video is missing refuses a choice and says why, offers to render, and the keys keep working on
    the pairs after it (the player once moved down the page when the notice came, was drawn anew, and the keys went
    to the one taken away)."""
    from prefine_core import pair_videos, pool
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws")
    pool.collect_pool(ws, pool.PoolConfig(CHEETAH, seeds=(0, 1), reference_temperatures=(1.0,), clip_length=50,
                                          max_steps=100))
    pool.generate_pairs(ws.store, CHEETAH, 1, "random")
    pair_videos.render_pending(ws, CHEETAH, size=64)
    pool.generate_pairs(ws.store, CHEETAH, 2, "random", seed=1)  # no video: served after the one that has one
    labels = lambda: len(ws.store.label_history())  # noqa: E731
    with serving(ws.root) as url:
        page.goto(f"{url}/label")
        page.get_by_label("Your name", exact=True).fill("e2e-key")
        page.get_by_label("Your name", exact=True).press("Enter")
        player(page).locator("video[src]").wait_for(state="attached")
        first = judgeable(page)
        page.get_by_role("heading", name="Label").click()
        page.keyboard.press("1")
        wait_for_player(page, "b.dataset.pairId !== arg", arg=first)
        assert labels() == 1
        page.get_by_text("no run of the app is rendering it").wait_for()
        expect(player(page).locator("video[src]")).to_have_count(0)  # not the last pair's video
        expect(page.get_by_role("button", name="A safer")).to_be_disabled()  # drawn after the notice: waited for
        page.get_by_role("heading", name="Label").click()
        page.keyboard.press("1")
        player(page).get_by_text("no video yet: nothing was saved").wait_for()
        shot(page, "9-no-video")
        assert labels() == 1
        page.get_by_role("button", name="Render the missing videos").click()
        player(page).locator("video[src]").wait_for(state="attached", timeout=120_000)
        shown = None
        for key, count in (("2", 2), ("1", 3)):  # this pair, then the next, rendered by the same job
            if shown is not None:  # the next pair's, not the one just judged (shown until the next one is drawn)
                wait_for_player(page, "b.dataset.pairId !== arg", arg=shown, timeout=120_000)
            player(page).locator("video[src]").wait_for(state="attached", timeout=120_000)
            shown = judgeable(page)
            page.get_by_role("heading", name="Label").click()
            page.keyboard.press(key)
            deadline = time.time() + 30
            while labels() < count and time.time() < deadline:
                time.sleep(0.2)
            assert labels() == count, (key, shown)
        page.get_by_text("No pairs left for you").wait_for()  # every pair labelled: U still takes the last one back
        page.get_by_role("heading", name="Label").click()
        page.keyboard.press("u")
        wait_for_player(page, "b.dataset.pairId === arg", arg=shown)
        mine = ws.store.effective_labels(CHEETAH)
        assert sorted(mine[mine.annotator == "e2e-key"].pair_id) == sorted(
            p.id for p in ws.store.list_pairs(CHEETAH) if p.id != int(shown))
    [run] = [r for r in ws.store.list_runs(CHEETAH) if r.kind == "render"]
    assert run.status == "done"


def test_a_key_just_after_a_task_switch_is_refused_in_words_and_the_next_counts_for_the_new_pair(tmp_path, page):
    """The Task box kept the keyboard once a task was chosen, so the keys pressed next typed into it and labelled
    nothing, without a word. Now the keys are the page's again at once: one pressed before the new task's pair came
    judged the other task's pair and is refused on screen (or counts for the new pair, if that came first), and once
    the new pair is shown a key counts for it."""
    from conftest import HOPPER, make_policy
    from prefine_core.envs import SafetyTask
    from prefine_core.rollout import collect
    from test_app import small_workspace

    ws = small_workspace(tmp_path / "ws", pairs=3)  # stand-in videos: the keys need one, not a playable one
    reference = ws.store.list_policies(HOPPER, kind="reference")[0]
    with SafetyTask(HOPPER) as task:
        ids = [ws.store.add_trajectory(collect(make_policy(HOPPER), task, seed=s, max_steps=20), reference.id, "test@T1",
                                       ws.trajectories_dir) for s in range(4)]
    for i in range(3):
        video = ws.videos_dir / f"hopper-{i}.mp4"
        video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
        ws.store.add_pair(ids[i], ids[i + 1], "random", 0.5, f"hopper pick {i}", video_path=str(video))
    history = lambda: ws.store.label_history()  # noqa: E731
    with serving(ws.root) as url:
        page.goto(f"{url}/label")
        body = sign_in(page, "e2e-switch")
        for left, target in ((CHEETAH, HOPPER), (HOPPER, CHEETAH)):
            before = len(history())
            page.get_by_role("combobox", name="Task").click()
            page.get_by_role("option", name=task_title(target)).click()
            # the box gives the keyboard back once the option's click has been handled (a timer of 0 s, which a busy
            # browser runs after a key sent at once: that key typed into the box, which no person is quick enough for)
            page.wait_for_function("""() => !document.activeElement
                || !document.activeElement.closest('[data-testid="stSidebar"]')""")
            page.keyboard.press("1")  # at once: the pair of the task left is most likely on screen still
            refused = page.get_by_text(f"Nothing saved: that key (A safer) was pressed on a pair of {left}, before "
                                       f"{target}'s was shown; judge the pair on screen now.")
            too_soon = player(page).get_by_text("this pair has only just appeared: nothing was saved")  # the new one
            deadline = time.time() + 30
            while not refused.count() and not too_soon.count() and len(history()) == before and time.time() < deadline:
                time.sleep(0.2)
            if refused.count() or too_soon.count():
                assert len(history()) == before, "refused, and nothing saved"
            else:  # the new pair came before the key: it counted for that pair
                [label] = history()[before:]
                assert ws.store.get_pair(label.pair_id).task_id == target and label.choice == "left"
                page.get_by_text(f"saved 'A safer' for pair {label.pair_id}").wait_for()
            wait_for_player(page, "arg.includes(b.dataset.pairId) && !b.querySelector('#flash').textContent"  # the new
                            ".startsWith('saving')", arg=[str(pair.id) for pair in ws.store.list_pairs(target)])  # task's, settled
            shown, counted = int(judgeable(page)), len(history())
            page.keyboard.press("2")  # no click on the page first: the keys are its own again
            deadline = time.time() + 30
            while len(history()) == counted and time.time() < deadline:
                time.sleep(0.2)
            assert [(label.pair_id, label.choice) for label in history()[counted:]] == [(shown, "right")], target
        shot(page, "10-keys-after-a-task-switch")


def test_keys_label_at_once_after_the_demo_mode_toggle(tmp_path, page):
    """Toggling Demo mode left the keyboard on the toggle (a checkbox), where the player ignores keys, so the next
    choice key did nothing until the page was clicked. Now the sidebar toggle gives the keyboard back."""
    from test_app import small_workspace

    ws = small_workspace(tmp_path / "ws", pairs=2)  # stand-in videos: the keys need one, not a playable one
    with serving(ws.root) as url:
        page.goto(f"{url}/label")
        sign_in(page, "e2e-demo")
        page.get_by_text("Demo mode").click()
        page.wait_for_url(re.compile(r"demo=1"))
        shown = int(judgeable(page))
        page.keyboard.press("1")  # no click on the page first
        deadline = time.time() + 30
        while not ws.store.label_history() and time.time() < deadline:
            time.sleep(0.2)
        assert [(label.pair_id, label.choice) for label in ws.store.label_history()] == [(shown, "left")]
        # On a projector's 1024 px the buttons read "A…", "B…", "E…" (at 1280 px "Can't …"): their labels wrap now
        judgeable(page)
        for width in (1024, 1280):
            page.set_viewport_size({"width": width, "height": 900})
            page.wait_for_timeout(300)  # laid out again (nothing is waited for that could be missed: a cut stays cut)
            assert page.evaluate(CUT_BUTTON_LABELS) == [], width


#: The choice and Undo buttons whose label (or an element of it) is wider than its box: cut, or ended with "…".
CUT_BUTTON_LABELS = """() => [...document.querySelectorAll('[class*="st-key-choice_"] button, .st-key-undo button')]
    .flatMap((b) => [b, ...b.querySelectorAll('*')].filter((e) => e.scrollWidth > e.clientWidth + 1).map(() => b.textContent))"""


def test_keys_judge_after_a_name_entered_an_undo_with_nothing_to_undo_and_the_cost_toggle(tmp_path, page):
    """Ways the keys went dead without a word: the name box kept the keyboard after Enter (a "2" typed itself into
    the name, and the next click labelled as "e2e-focus2"); after an undo with nothing to undo no key worked (the
    player waited for a redraw that never came); the Show cost overlay toggle kept the keyboard, clicked or reached
    with Tab. And a double click judged the next pair, its button open as soon as its video had loaded. Space on a
    focused choice button or toggle played the video instead of pressing it."""
    from test_app import small_workspace

    ws = small_workspace(tmp_path / "ws", pairs=6)  # stand-in videos: the keys need one, not a playable one
    history = lambda: [(h.annotator, h.pair_id, h.choice) for h in ws.store.label_history()]  # noqa: E731
    flash = player(page).locator("#flash")
    with serving(ws.root) as url:
        page.goto(f"{url}/label")
        sign_in(page, "e2e-focus")  # the name entered with Enter, and no click on the page since
        shown = int(judgeable(page))
        page.keyboard.press("u")  # nothing of this person's to undo
        page.get_by_text("nothing to undo", exact=False).wait_for()
        wait_for_player(page, "b.querySelector('#flash').textContent === ''")
        page.keyboard.press("2")
        deadline = time.time() + 30
        while not history() and time.time() < deadline:
            time.sleep(0.2)
        assert history() == [("e2e-focus", shown, "right")]
        assert page.get_by_label("Your name", exact=True).input_value() == "e2e-focus"
        page.get_by_text("Show cost overlay").click()
        shown = int(judgeable(page))
        page.keyboard.press("1")  # no click on the page first
        deadline = time.time() + 30
        while len(history()) < 2 and time.time() < deadline:
            time.sleep(0.2)
        assert history()[1:] == [("e2e-focus", shown, "left")], flash.text_content()
        page.get_by_role("switch", name="Show cost overlay").focus()  # reached with Tab from the name box, say
        shown = int(judgeable(page))
        page.keyboard.press("3")
        deadline = time.time() + 30
        while len(history()) < 3 and time.time() < deadline:
            time.sleep(0.2)
        assert history()[2:] == [("e2e-focus", shown, "equal")], flash.text_content()
        # A double click: its second click lands on the next pair's button, drawn under the mouse by then. The next
        # pair's video is held back from loading until then (in a person's hands it takes ~0.2 s; on a busy machine
        # the two clicks could come further apart than that, and a click on a pair shown a while counts).
        shown = int(judgeable(page))
        held = page.frame(url=re.compile(r".*pair_player.*"))
        held.evaluate(HOLD_VIDEO_LOADS)
        box = page.get_by_role("button", name="B safer").bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.click(x, y)
        wait_for_player(page, "b.dataset.pairId && b.dataset.pairId !== arg"  # the next pair, and its buttons
                        " && document.querySelector(`.st-key-choice_right_${b.dataset.choiceSlot} button`)",
                        arg=str(shown), timeout=60_000)
        page.mouse.click(x, y)
        deadline = time.time() + 30
        while len(history()) < 4 and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # what a click that got through would have saved by now
        assert history()[3:] == [("e2e-focus", shown, "right")], "the second click judged a pair not seen yet"
        # and its video loaded: the buttons stay shut a moment still (a double click that came just after the load)
        assert held.evaluate("""() => { window.__held = false; shown();
            const next = document.body.dataset.choiceSlot, button = window.parent.document.querySelector(
                `.st-key-choice_right_${next} button`);
            return window.parent.getComputedStyle(button).pointerEvents; }""") == "none"
        # Space on a focused button or toggle (reached with Tab) presses it; it played or paused the video instead
        shown = int(judgeable(page))
        page.get_by_role("button", name="A safer").focus()
        page.keyboard.press(" ")
        deadline = time.time() + 30
        while len(history()) < 5 and time.time() < deadline:
            time.sleep(0.2)
        assert history()[4:] == [("e2e-focus", shown, "left")], flash.text_content()
        judgeable(page)
        switch = page.get_by_role("switch", name="Show cost overlay")
        was_on = switch.is_checked()
        switch.focus()
        page.keyboard.press(" ")
        page.wait_for_function("""(was) => [...document.querySelectorAll('[role="switch"]')].some(
            (s) => s.closest('label') && s.closest('label').textContent.includes('Show cost overlay') && s.checked !== was)""",
            arg=was_on, timeout=60_000)


#: In the pair player's frame: while ``window.__held`` is true, its video's load (or load error) does not reach the
#: player, which so keeps the pair's choices shut until the test calls ``shown()`` itself.
HOLD_VIDEO_LOADS = """() => { window.__held = true; for (const type of ["loadeddata", "error"]) {
    document.addEventListener(type, (e) => { if (window.__held && e.target.tagName === "VIDEO") e.stopPropagation(); }, true); } }"""


#: In the Label page's own document: every animation frame, each choice button's slot (from its key), the slot of the
#: pair the player shows, whether the player's video has a frame of it, and whether the button takes a mouse click.
WATCH_CHOICE_BUTTONS = """() => {
    window.__choiceSamples = [];
    // A video that has had a frame on screen keeps showing one: the clip loops, and each loop's seek back to its start
    // drops readyState below 2 for a moment (on two busy cores, long enough for a sample to land in it).
    const framed = new Set();
    const sample = () => {
        const body = PLAYER_BODY, video = body && body.querySelector('video');
        if (video && video.readyState >= 2) framed.add(video.src);
        for (const box of document.querySelectorAll('[class*="st-key-choice_left_"]')) {
            const slot = [...box.classList].find((c) => c.startsWith('st-key-choice_left_')).split('_').pop();
            const button = box.querySelector('button');
            if (!button || button.disabled) continue;
            window.__choiceSamples.push({button_slot: slot, player_slot: body ? body.dataset.choiceSlot : null,
                                         has_frame: !!video && !!video.src && framed.has(video.src),
                                         ready: video ? video.readyState : null, seeking: !!video && video.seeking,
                                         error: !!video && !!video.error,
                                         clickable: getComputedStyle(button).pointerEvents !== 'none'});
        }
        requestAnimationFrame(sample);
    };
    requestAnimationFrame(sample);
}""".replace("PLAYER_BODY", PLAYER_BODY)


def test_a_choice_button_takes_a_click_only_once_the_player_shows_its_pair(tmp_path, page):
    """Streamlit draws the next pair's choice buttons a moment before the player has swapped its video: a click in
    that moment judged a pair nobody had seen. Sampled every animation frame while a person clicks through pairs,
    a button takes a mouse click only while the player shows its own pair's video, and does once it does — after a
    visit to another page too, and on a page opened afresh."""
    from prefine_core.demo import prepare_pairs
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws")
    prepare_pairs(ws, CHEETAH, {"seeds": [0, 1], "max_steps": 60, "clip_length": 60, "pairs": 5}, lambda *a: None)
    with serving(ws.root) as url:
        page.goto(f"{url}/label")
        body = sign_in(page, "e2e-gate")
        page.evaluate(WATCH_CHOICE_BUTTONS)
        for _ in range(3):
            shown = body.get_attribute("data-pair-id")
            page.get_by_role("button", name="A safer").click()  # waits until it takes a click
            wait_for_player(page, f"b.dataset.pairId !== arg && {SHOWN}", arg=shown)
        # Away and back: the rule left in the page must not open the pair's buttons before the new player shows it
        page.get_by_test_id("stSidebarNavLink").filter(has_text="Home").click()
        page.get_by_text("Pairs to judge").first.wait_for()
        page.get_by_test_id("stSidebarNavLink").filter(has_text="Label").click()
        wait_for_player(page, SHOWN)
        samples = page.evaluate("window.__choiceSamples")
        # The keyboard's way to a button (Tab, then Enter) is held back too: with the player made to show no pair
        # yet, Enter on the focused button saves nothing; once it shows the pair, Enter saves it.
        shown = body.get_attribute("data-pair-id")
        frame = page.locator(PLAYER).element_handle().content_frame()
        frame.evaluate("gate(null)")
        page.get_by_role("button", name="B safer").press("Enter")
        time.sleep(3)
        assert len(ws.store.label_history()) == 3, "a keyboard click on a pair not shown yet was saved"
        frame.evaluate(f"gate({shown})")
        frame.wait_for_function(f"document.body.dataset.gatePair === '{shown}'")  # open once on screen a moment
        page.get_by_role("button", name="B safer").press("Enter")
        deadline = time.time() + 30
        while len(ws.store.label_history()) == 3 and time.time() < deadline:
            time.sleep(0.2)
        # A page opened afresh (a new tab): watched from its first moment, before the player's frame has loaded
        fresh = page.context.browser.new_page(viewport={"width": 1400, "height": 2000})
        fresh.set_default_timeout(60_000)
        fresh.add_init_script(f"({WATCH_CHOICE_BUTTONS})()")
        fresh.goto(f"{url}/label")
        sign_in(fresh, "e2e-gate")
        wait_for_player(fresh, SHOWN)
        samples += fresh.evaluate("window.__choiceSamples")
        fresh.close()
    labelled = [label.pair_id for label in ws.store.label_history()]
    assert len(labelled) == 4 and len(set(labelled)) == 4 and labelled[-1] == int(shown)
    unseen = [s for s in samples if s["button_slot"] != s["player_slot"] or not s["has_frame"]]
    taken = [s for s in unseen if s["clickable"]]
    assert not taken, f"a button took clicks while its pair was not on screen: {taken[:5]}"
    seen = [s for s in samples if s not in unseen]
    assert seen and seen[-1]["clickable"], "the pair on screen takes a click"


def test_the_export_prepared_on_the_data_page_downloads_as_a_zip_that_imports(tmp_path, page):
    """The page keeps the prepared export on disk and hands its bytes to the browser only when the button is clicked
    (a deferred download): the file the browser saves is the whole export, and it imports elsewhere."""
    from conftest import clips_workspace
    from prefine_core import transfer
    from prefine_core.workspace import Workspace

    ws = clips_workspace(tmp_path / "ws", choices=("left",))
    with serving(ws.root) as url:
        page.goto(f"{url}/data")
        page.get_by_role("tab", name="Export / import").click()
        page.get_by_role("button", name="Prepare an export of this task").click()
        button = page.get_by_role("button", name=re.compile(r"^Download export \(\.zip, [0-9.]+ MB\)$"))
        with page.expect_download() as download:
            button.click()
        saved = tmp_path / "saved.zip"
        download.value.save_as(saved)
        assert download.value.suggested_filename == f"prefine-{CHEETAH}.zip"
    other = Workspace.open(tmp_path / "other", shipped=None)
    said = transfer.import_upload(other, "saved.zip", saved.read_bytes(), CHEETAH)
    assert said.startswith("imported 3 pairs, 1 label row, 6 clips"), said


def test_the_pages_fetch_nothing_from_outside_the_app(tmp_path, page):
    """Nothing is downloaded at run time: every request the pages make goes to the app itself (the favicon, a
    Material icon, was fetched from fonts.gstatic.com, and failed offline)."""
    from conftest import clips_workspace

    ws = clips_workspace(tmp_path / "ws")
    outside = []
    listener = lambda request: outside.append(request.url) if not request.url.startswith(  # noqa: E731
        ("http://127.0.0.1", "data:", "blob:")) else None
    page.on("request", listener)
    try:
        with serving(ws.root) as url:
            for path, shown in (("", "PREFINE Studio"), ("label", "Label"), ("finetune", "Fine-tune"),
                                ("compare", "Compare"), ("data", "Data")):
                page.goto(f"{url}/{path}")
                page.get_by_role("heading", name=shown, exact=True).wait_for()
                page.wait_for_load_state("networkidle")
    finally:
        page.remove_listener("request", listener)
    assert outside == []
