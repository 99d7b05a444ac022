"""Soak: the app labelling through the synthetic teacher for a long time; memory and file handles measured.

One headless Chromium session labels on the Label page by keyboard, choosing what the synthetic
teacher would choose for the pair on screen; pairs are added to the workspace as they run out, so
it never stalls. Every ``--every`` seconds the app server's resident memory (VmRSS) and open file
descriptors are sampled from /proc. Samples go to ``test-artifacts/soak_samples.jsonl``, a summary
to ``test-artifacts/soak_summary.json`` and the reliability section of BENCHMARKS.md.

    .venv/bin/python scripts/soak.py --minutes 30          # the recorded run (in the background)
    .venv/bin/python -m pytest -m soak tests/test_soak.py  # a 3-minute version as a soak-marked test
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_load import ARGS, CHROMIUM, REPO, TASK, App, Session, label_one, open_label_page, prepare_workspace, shown_pair  # noqa: E402

KEYS = {"left": "1", "right": "2", "equal": "3", "cant_tell": "4"}


def process_sample(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    field = lambda name: int(next(l.split()[1] for l in status.splitlines() if l.startswith(name + ":")))  # noqa: E731
    return {"rss_mb": round(field("VmRSS") / 1024, 1), "fds": len(list(Path(f"/proc/{pid}/fd").iterdir())),
            "threads": field("Threads")}


def replenish(ws, pending_floor: int = 40, chunk: int = 200) -> int:
    """Add ``chunk`` pairs (over the existing clips, cycling) when fewer than ``pending_floor`` are open."""
    if ws.store.counts(TASK)["pending"] >= pending_floor:
        return 0
    trajectories = [t.id for t in ws.store.list_trajectories(TASK)]
    video = ws.store.list_pairs(TASK)[0].video_path
    combos = list(itertools.combinations(trajectories, 2))
    start = len(ws.store.list_pairs(TASK)) % len(combos)
    picks = [combos[(start + i) % len(combos)] for i in range(chunk)]
    with ws.store.batch() as batch:
        for a, b in picks:
            batch.add_pair(a, b, "random", 0.0, "soak pair", video_path=video)
    return chunk


async def soak(app: App, ws, minutes: float, every: float, samples_path: Path) -> dict:
    from playwright.async_api import async_playwright

    from prefine_core.teachers import SyntheticTeacher

    teacher = SyntheticTeacher(name="soak")
    session = Session("soak-teacher")
    samples = []
    deadline = time.time() + minutes * 60
    t0 = time.time()

    def sample() -> None:
        row = {"t_s": round(time.time() - t0, 1), "labels": len(session.acknowledged), **process_sample(app.process.pid)}
        samples.append(row)
        with open(samples_path, "a") as handle:
            handle.write(json.dumps(row) + "\n")

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = await browser.new_context(viewport={"width": 1300, "height": 1100})
        page = await context.new_page()
        page.set_default_timeout(120_000)
        await open_label_page(page, app.url, session.name)
        sample()
        next_sample = time.time() + every
        while time.time() < deadline:
            replenish(ws)
            pair_id = await shown_pair(page)
            if pair_id is None:  # "no pairs left" shown before the refill: reload the page
                await page.reload()
                await page.frame_locator('iframe[title="prefine_core.components.pair_player"]').locator(
                    "body[data-pair-id]").wait_for()
                continue
            pair = ws.store.get_pair(pair_id)
            choice = teacher.judge(ws.store.get_trajectory(pair.left_id), ws.store.get_trajectory(pair.right_id))
            try:
                await label_one(page, session, KEYS[choice])
            except Exception as exc:  # noqa: BLE001 — recorded and retried; the soak goes on
                session.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                await page.reload()
            if time.time() >= next_sample:
                sample()
                next_sample += every
        sample()
        await browser.close()
    return {"session": session, "samples": samples}


def choices_per_minute(samples: list[dict], minutes: float = 5.0) -> tuple[float, float]:
    """Choices a minute over the first and the last ``minutes`` of the soak: a page that slows as a session goes on
    (a frame loop more per pair shown did) shows as the second far below the first."""
    end = samples[-1]["t_s"]
    first = max((s for s in samples if s["t_s"] <= 60 * minutes), key=lambda s: s["t_s"])
    last = min((s for s in samples if s["t_s"] >= end - 60 * minutes), key=lambda s: s["t_s"])
    rate = lambda a, b: round(60 * (b["labels"] - a["labels"]) / max(b["t_s"] - a["t_s"], 1e-9), 1)  # noqa: E731
    return rate(samples[0], first), rate(last, samples[-1])


def summarise(samples: list[dict], session, minutes: float, stored: int, machine: str) -> dict:

    warm = next((s for s in samples if s["t_s"] >= 60), samples[0])  # after a minute: caches and imports settled
    end = samples[-1]
    peak = max(samples, key=lambda s: s["rss_mb"])
    table = {k: {"rss MB": s["rss_mb"], "open fds": s["fds"], "threads": s["threads"], "labels so far": s["labels"],
                 "t s": s["t_s"]} for k, s in (("start", samples[0]), ("after 1 min", warm), ("peak RSS", peak), ("end", end))}
    latencies = sorted(session.latencies)
    return {"minutes": minutes, "machine": machine, "labels": len(session.acknowledged), "stored": stored,
            "errors": session.errors[:20], "n_errors": len(session.errors),
            "p50_s": latencies[len(latencies) // 2] if latencies else None,
            "p95_s": latencies[int(0.95 * (len(latencies) - 1))] if latencies else None,
            "rss_growth_mb_after_warmup": round(end["rss_mb"] - warm["rss_mb"], 1),
            "fd_growth_after_warmup": end["fds"] - warm["fds"],
            "choices_per_minute_first_last_5": choices_per_minute(samples), "table": table}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--every", type=float, default=20, help="seconds between samples")
    parser.add_argument("--no-write", action="store_true", help="do not write BENCHMARKS.md")
    parser.add_argument("--out", type=Path, default=REPO / "test-artifacts")
    args = parser.parse_args()
    args.out.mkdir(exist_ok=True)
    samples_path = args.out / "soak_samples.jsonl"
    samples_path.write_text("")
    from prefine_core.report import machine_line

    machine = machine_line()  # its load average is the one at the start, as it says (read at the end, it was not)
    with tempfile.TemporaryDirectory(prefix="prefine-soak-") as tmp:
        ws, _ = prepare_workspace(Path(tmp), 300)
        app = App(Path(tmp)).start()
        try:
            outcome = asyncio.run(soak(app, ws, args.minutes, args.every, samples_path))
        finally:
            app.stop()
        labels = ws.store.effective_labels(TASK)
        session = outcome["session"]
        stored = int((labels.annotator == session.name).sum())
        missing = sorted(set(session.acknowledged) - set(labels[labels.annotator == session.name].pair_id.astype(int)))
    summary = summarise(outcome["samples"], session, args.minutes, stored, machine)
    summary["missing"] = missing
    (args.out / "soak_summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "table"}, indent=1))
    if not args.no_write:
        from bench_load import write_benchmarks

        write_benchmarks(soak=summary)
    return 0 if not missing else 1


if __name__ == "__main__":
    sys.exit(main())
