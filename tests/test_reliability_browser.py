"""In the browser (headless Chromium driving a real ``streamlit run``): the app server SIGKILLed while
someone labels, an annotator name full of markup, and an upload over the size limit."""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from bench_load import ARGS, CHROMIUM, PLAYER, TASK, App, Session, check_counted, label_one, open_label_page, prepare_workspace  # noqa: E402

pytestmark = pytest.mark.slow
MARKUP = "<img src=x onerror=document.title='owned'>**b**<i>x</i>"  # within the 64-character limit


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM}")
    root = tmp_path_factory.mktemp("browser-faults")
    ws, _ = prepare_workspace(root, 30)
    return ws


@pytest.fixture(scope="module")
def app(workspace):
    """One server for the tests that do not kill it, with a 1 MB upload limit."""
    app = App(workspace.root, extra_args=("--server.maxUploadSize", "1")).start()
    yield app
    app.stop()


async def _browser(p):
    return await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)


def test_server_sigkilled_while_labelling_keeps_every_acknowledged_label(workspace):
    from playwright.async_api import async_playwright

    session = Session("kill-test")

    async def label(app: App, n: int, kill_in_flight: bool = False):
        async with async_playwright() as p:
            browser = await _browser(p)
            page = await (await browser.new_context()).new_page()
            page.set_default_timeout(60_000)
            await open_label_page(page, app.url, session.name)
            for _ in range(n):
                await label_one(page, session)
            if kill_in_flight:  # one more choice, and the server dies while handling it
                await page.get_by_role("heading", name="Label").click()
                await page.keyboard.press("ArrowLeft")
                app.kill()
            await browser.close()

    app = App(workspace.root).start()
    try:
        asyncio.run(label(app, 5, kill_in_flight=True))
    finally:
        app.kill()
    assert app.process.returncode == -9
    assert check_counted(workspace.store, [session])["problems"] == []
    restarted = App(workspace.root).start()  # a fresh server on the same workspace
    try:
        asyncio.run(label(restarted, 3))
    finally:
        restarted.stop()
    counted = check_counted(workspace.store, [session])
    assert counted["problems"] == [] and len(session.acknowledged) == 8, counted


def test_markup_in_a_name_is_text_in_the_dom_never_html(workspace, app):
    from playwright.async_api import async_playwright

    async def run(app: App):
        async with async_playwright() as p:
            browser = await _browser(p)
            page = await (await browser.new_context()).new_page()
            page.set_default_timeout(60_000)
            await open_label_page(page, app.url, MARKUP)
            title = await page.title()
            await page.get_by_text(f"Labelling as: {MARKUP}", exact=True).wait_for()
            await label_one(page, Session(MARKUP))

            async def markup_run() -> tuple[int, list[int]]:
                """Elements the name's markup would have made, in the page and in its component frames (the player)."""
                injected = await page.evaluate("""() => [...document.querySelectorAll('img[src="x"], i')]
                    .filter(e => e.textContent === 'x' || e.getAttribute('src') === 'x').length""")
                frames = [await f.evaluate("() => document.querySelectorAll('img[src=\"x\"]').length")
                          for f in page.frames if f != page.main_frame and not f.is_detached()]
                return injected, frames

            on_label = await markup_run()  # where the name is shown as text, after a label saved under it
            shown = await page.get_by_text(MARKUP).count()
            await page.get_by_role("link", name="Data").first.click()
            await page.get_by_role("tab", name="Labels").click()
            await page.wait_for_timeout(1500)
            on_data = await markup_run()
            final_title = await page.title()
            await browser.close()
            return title, final_title, on_label, on_data, shown

    title, final_title, on_label, on_data, shown = asyncio.run(run(app))
    assert shown >= 1, "the name is on the Label page, as text"
    assert on_label[1], "the Label page's player frame was read"
    for injected, frames in (on_label, on_data):
        assert injected == 0 and not any(frames)
    assert "owned" not in (title, final_title)  # the onerror handler never ran
    labels = workspace.store.effective_labels(TASK)
    assert (labels.annotator == MARKUP).sum() == 1


def test_upload_over_the_size_limit_is_refused_and_changes_nothing(workspace, app, tmp_path):
    from playwright.async_api import async_playwright

    big = tmp_path / "big.hdf5"
    big.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * (2 * 1024 * 1024))
    before = (len(workspace.store.list_trajectories()), len(workspace.store.list_policies()))

    async def run(app: App):
        async with async_playwright() as p:
            browser = await _browser(p)
            page = await (await browser.new_context()).new_page()
            page.set_default_timeout(60_000)
            await page.goto(app.url)
            await page.get_by_role("link", name="Data").first.click()
            await page.get_by_role("tab", name="Export / import").click()
            await page.locator("input[type=file]").set_input_files(str(big))
            await page.get_by_text("File must be 1.0MB or smaller").wait_for()
            await page.screenshot(path=str(tmp_path / "oversize.png"))
            imports = await page.get_by_role("button", name="Import big.hdf5").count()
            await browser.close()
            return imports

    assert asyncio.run(run(app)) == 0  # no import button: the file never reached the app
    assert (len(workspace.store.list_trajectories()), len(workspace.store.list_policies())) == before


@pytest.mark.postgres
def test_pages_say_so_while_postgres_is_down_and_come_back_with_it(private_postgres, tmp_path):
    """PostgreSQL stopped under a running app: a page that reads the store shows one message (no
    traceback), and the same page works again once the database is back."""
    import os

    from playwright.async_api import async_playwright

    ws, _ = prepare_workspace(tmp_path / "ws", 4, db_url=private_postgres.schema_url(f"outage_{os.getpid()}"))
    app = App(ws.root, db_url=ws.store.url).start()

    async def run():
        async with async_playwright() as p:
            browser = await _browser(p)
            page = await (await browser.new_context()).new_page()
            page.set_default_timeout(90_000)
            await open_label_page(page, app.url, "outage")
            private_postgres.pg_ctl("stop", "-m", "fast")
            try:
                messages = []
                for link in ("Fine-tune", "Data", "Label"):
                    await page.get_by_role("link", name=link).first.click()
                    await page.get_by_text("The database is unreachable").first.wait_for()
                    messages.append(await page.locator('[data-testid="stException"]').count())
            finally:
                private_postgres.start()
            await open_label_page(page, app.url, "outage")  # a fresh visit: the label page with its pair
            back = await page.get_by_text("The database is unreachable").count()
            await browser.close()
            return messages, back

    try:
        tracebacks, still_down = asyncio.run(run())
    finally:
        app.stop()
    assert tracebacks == [0, 0, 0] and still_down == 0


def test_a_first_visit_straight_to_a_page_gets_the_whole_app(workspace):
    """A fresh server whose first request is a page's own address (a bookmark, a tab reloading after a
    restart) still runs through app.py: the app's navigation and sidebar, not Streamlit's legacy page list."""
    from playwright.async_api import async_playwright

    app = App(workspace.root).start()

    async def run():
        async with async_playwright() as p:
            browser = await _browser(p)
            page = await (await browser.new_context()).new_page()
            page.set_default_timeout(60_000)
            await page.goto(f"{app.url}/label")
            await page.get_by_text("Workspace:").wait_for()
            links = [text.split()[-1] for text in await page.get_by_role("link").all_inner_texts() if text.split()]  # no icon names
            await browser.close()
            return links

    try:
        links = asyncio.run(run())
    finally:
        app.stop()
    assert "Fine-tune" in links and "app" not in links, links
