"""Load: N browser sessions label one workspace at once while a fine-tune runs; nothing may be lost.

One headless Chromium with N contexts (one per labeller, each under its own annotator name) drives
a real ``streamlit run`` of the app by keyboard, on SQLite and on PostgreSQL. Every choice is timed
from the key press to the next pair on screen; afterwards every acknowledged choice (the next pair
appeared) must be in the store under the right name. Results go to BENCHMARKS.md ("reliability").

    .venv/bin/python scripts/bench_load.py --sessions 10 --labels 12            # SQLite and PostgreSQL
    .venv/bin/python scripts/bench_load.py --backends sqlite --sessions 3 --no-write

The helpers (a prepared workspace with cheap shared videos, the app as a subprocess, one labelling
session) are also used by ``scripts/soak.py`` and the reliability tests.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("MUJOCO_GL", "egl")
TASK = "SafetyHalfCheetahVelocity-v1"
CHROMIUM = os.environ.get("PREFINE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
PLAYER = 'iframe[title="prefine_core.components.pair_player"]'
CLIP = 40


# -- the workspace -----------------------------------------------------------------------------

def pg_schema_url(base: str) -> str:
    """A fresh schema in the PostgreSQL database at ``base``; returns a URL whose connections use it."""
    import sqlalchemy

    schema = f"load_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    admin.dispose()
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"


def prepare_workspace(root: Path, n_pairs: int, db_url: str | None = None, seeded_pairs: int = 0):
    """A workspace with one policy, clips from one real rollout, ``n_pairs`` pairs that all show one
    real rendered pair video (cheap to make, same bytes over the wire as a real pool), and
    ``seeded_pairs`` extra pairs labelled by ``seeder`` so that a fine-tune can start."""
    import torch

    from prefine_core import render
    from prefine_core.envs import SafetyTask
    from prefine_core.policy import PolicyMeta, TanhGaussianPolicy, save_policy
    from prefine_core.rollout import collect
    from prefine_core.workspace import Workspace

    ws = Workspace.open(root, db_url=db_url, shipped=None)
    with SafetyTask(TASK) as task:
        torch.manual_seed(0)
        policy = TanhGaussianPolicy(PolicyMeta(task_id=TASK, obs_dim=task.obs_dim, act_dim=task.act_dim, name="load"))
        policy_id = ws.store.add_policy("load reference", save_policy(policy, ws.policies_dir / "ref.safetensors"),
                                        TASK, "reference")
        total = n_pairs + seeded_pairs
        n_traj = next(k for k in range(2, 10_000) if k * (k - 1) // 2 >= total)
        episodes = [collect(policy, task, seed=s, max_steps=400, deterministic=False) for s in range(-(-n_traj // (400 // CLIP)))]
    windows = [e.window(start, CLIP) for e in episodes for start in range(0, e.length - CLIP + 1, CLIP)][:n_traj]
    if len(windows) < n_traj:
        raise RuntimeError(f"only {len(windows)} clips for {n_traj} trajectories")
    _, frames = render.record(policy, TASK, seed=0, max_steps=CLIP, size=128)
    video = render.write_pair_video(frames, windows[0].costs, frames, windows[1].costs, ws.videos_dir / "shared.mp4")
    with ws.store.batch() as batch:
        ids = [batch.add_trajectory(w, policy_id, "load", ws.trajectories_dir) for w in windows]
        pairs = [batch.add_pair(a, b, "random", 0.0, "load test pair", video_path=str(video))
                 for a, b in itertools.islice(itertools.combinations(ids, 2), total)]
    for pair_id in pairs[n_pairs:]:
        ws.store.add_label(pair_id, "seeder", "left")
    return ws, policy_id


def start_finetune(ws, policy_id: int, steps: int = 200_000) -> int:
    """A long PREFINE run in the background (cancelled by the caller)."""
    from prefine_core import jobs
    from prefine_core.prefine import PrefineConfig

    config = PrefineConfig(steps=steps, log_every=50, eval_every=2000, eval_episodes=1, segment_length=20,
                           batch_size=8, bc_batch_size=64, select="last")
    return jobs.launch(ws, "prefine", TASK, policy_id, config.to_dict())


def wait_until_started(ws, run_id: int) -> None:
    """Wait until the fine-tune's process has claimed its run (it imports torch first), for as long as the app gives a
    queued run to start (:data:`jobs.START_TIMEOUT`): the sessions then label while it trains, however slow the
    machine is to start it. A run that never leaves the queue, or ends, says so in the row's ``status_during``."""
    from prefine_core import jobs

    deadline = time.monotonic() + jobs.START_TIMEOUT.total_seconds()
    while ws.store.get_run(run_id).status == "queued" and time.monotonic() < deadline:
        time.sleep(0.2)


# -- the app -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class App:
    """``streamlit run app.py`` on a workspace, as a process group of its own."""

    root: Path
    db_url: str | None = None
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> "App":
        env = dict(os.environ, PREFINE_WORKSPACE=str(self.root), PREFINE_SHIPPED_POLICIES="", MUJOCO_GL="egl")
        env.pop("PREFINE_DB_URL", None)
        if self.db_url:
            env["PREFINE_DB_URL"] = self.db_url
        log = open(self.root / "streamlit.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false", *self.extra_args],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"the app did not start in {timeout} s; see {self.root / 'streamlit.log'}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the server's whole process group (SIGKILL: no clean-up runs)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


# -- one labeller ------------------------------------------------------------------------------

@dataclass
class Session:
    name: str
    acknowledged: list[int] = field(default_factory=list)
    """Pairs whose choice the app acknowledged (the next pair, or 'no pairs left', appeared)."""
    latencies: list[float] = field(default_factory=list)
    """Seconds from the key press to the next pair on screen."""
    errors: list[str] = field(default_factory=list)


async def open_label_page(page, url: str, name: str) -> None:
    await page.goto(url)
    await page.get_by_role("link", name="Label").first.click()
    field_ = page.get_by_label("Your name", exact=True)
    await field_.fill(name)
    await field_.press("Enter")
    await page.frame_locator(PLAYER).locator("body[data-pair-id]").wait_for()


async def shown_pair(page) -> int | None:
    """The pair id the player shows, or None when there is no player (no pairs left)."""
    value = await page.evaluate(f"""() => {{ const f = document.querySelector('{PLAYER}');
        const b = f && f.contentDocument && f.contentDocument.body; return b ? (b.dataset.pairId || null) : null; }}""")
    return int(value) if value else None


async def judgeable_pair(page, timeout_s: float = 60) -> int | None:
    """The pair the player shows, once a key may judge it (its clips on screen a moment: the player's
    ``data-gate-pair``; no choice waiting for the page: ``data-pending``), or None when there is no player (no pairs
    left)."""
    await page.wait_for_function(
        f"""() => {{ if (document.body.innerText.includes('No pairs left for you')) return true;
             const f = document.querySelector('{PLAYER}'); const b = f && f.contentDocument && f.contentDocument.body;
             return b && b.dataset.pairId && b.dataset.gatePair === b.dataset.pairId && !b.dataset.pending; }}""",
        timeout=timeout_s * 1000)
    return await shown_pair(page)


async def label_one(page, session: Session, key: str = "ArrowLeft", timeout_s: float = 60) -> bool:
    """Press ``key`` on the pair shown, once it may be judged; wait for the next pair. False when none was shown."""
    before = await judgeable_pair(page, timeout_s)
    if before is None:
        return False
    await page.get_by_role("heading", name="Label").click()
    start = time.perf_counter()
    await page.keyboard.press(key)
    await page.wait_for_function(
        f"""([before]) => {{ if (document.body.innerText.includes('No pairs left for you')) return true;
             const f = document.querySelector('{PLAYER}'); const b = f && f.contentDocument && f.contentDocument.body;
             return b && b.dataset.pairId && b.dataset.pairId !== before; }}""",
        arg=[str(before)], timeout=timeout_s * 1000)
    session.latencies.append(time.perf_counter() - start)
    session.acknowledged.append(before)
    return True


async def run_session(browser, url: str, session: Session, labels: int, choose=None, deadline: float | None = None):
    """Label up to ``labels`` pairs (or until ``deadline``) in a fresh browser context."""
    context = await browser.new_context(viewport={"width": 1300, "height": 1100})
    page = await context.new_page()
    page.set_default_timeout(120_000)
    try:
        await open_label_page(page, url, session.name)
        while len(session.acknowledged) < labels and (deadline is None or time.time() < deadline):
            key = "ArrowLeft" if choose is None else choose(await shown_pair(page))
            if not await label_one(page, session, key):
                break
    except Exception as exc:  # a session's failure is a result, reported, not a crash of the benchmark
        session.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        await context.close()
    return session


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def label_concurrently(url: str, names: list[str], labels: int, quiet: bool = False) -> list[Session]:
    from playwright.async_api import async_playwright

    args = [*ARGS, "--autoplay-policy=user-gesture-required"] if quiet else ARGS
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        sessions = [Session(n) for n in names]
        await asyncio.gather(*(run_session(browser, url, s, labels) for s in sessions))
        await browser.close()
    return sessions


def check_counted(store, sessions: list[Session]) -> dict:
    """Every acknowledged choice is in the store under its labeller's name, and nothing else is."""
    labels = store.effective_labels(TASK)
    problems = []
    for s in sessions:
        mine = set(labels[labels.annotator == s.name].pair_id.astype(int))
        missing = sorted(set(s.acknowledged) - mine)
        extra = sorted(mine - set(s.acknowledged))
        if missing:
            problems.append(f"{s.name}: acknowledged but not stored: {missing}")
        if len(extra) > 1:  # at most the one choice in flight when the session ended
            problems.append(f"{s.name}: stored but never acknowledged: {extra}")
    acked = [p for s in sessions for p in s.acknowledged]
    if len(acked) != len(set(acked)):
        problems.append("a pair was labelled by two sessions although overlap is 1")
    return {"acknowledged": len(acked), "stored": int(labels.annotator.isin([s.name for s in sessions]).sum()),
            "problems": problems}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))] if ordered else float("nan")


def run_load(backend: str, sessions: int, labels: int, root: Path, finetune: bool = True, quiet: bool = False) -> dict:
    from prefine_core import jobs

    db_url = None
    if backend == "postgres":
        base = os.environ.get("PREFINE_TEST_PG_URL") or subprocess.run(
            [str(REPO / "scripts" / "start_test_postgres.sh")], capture_output=True, text=True, check=True).stdout.split()[-1]
        db_url = pg_schema_url(base)
    ws, policy_id = prepare_workspace(root, sessions * labels + sessions, db_url, seeded_pairs=4 if finetune else 0)
    run_id = start_finetune(ws, policy_id) if finetune else None
    app = App(root, db_url).start()
    try:
        if run_id is not None:
            wait_until_started(ws, run_id)
        t0, cpu0 = time.time(), cpu_seconds(app.process.pid)
        result = asyncio.run(label_concurrently(app.url, [f"labeller-{i:02d}" for i in range(sessions)], labels, quiet))
        wall, server_cpu = time.time() - t0, cpu_seconds(app.process.pid) - cpu0
        load_average = os.getloadavg()[0]
    finally:
        app.stop()
    fine_tune = {}
    if run_id is not None:
        run = ws.store.get_run(run_id)
        steps = ws.store.run_metrics(run_id)
        fine_tune = {"status_during": run.status, "steps_during": int(steps.step.max()) if len(steps) else 0}
        jobs.cancel(ws, run_id)
    latencies = [x for s in result for x in s.latencies]
    counted = check_counted(ws.store, result)
    ws.store.close()
    from prefine_core.report import machine_line

    return {"machine": machine_line(), "backend": backend, "sessions": sessions, "labels_each": labels, "wall_s": round(wall, 1),
            "clients": "videos paused" if quiet else "videos playing", "server_cpu_s": round(server_cpu, 1),
            "load_average_1min": round(load_average, 1),
            "p50_s": percentile(latencies, 50), "p95_s": percentile(latencies, 95), "max_s": max(latencies, default=float("nan")),
            "choices": len(latencies), **counted, **fine_tune,
            "errors": [e for s in result for e in s.errors]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--labels", type=int, default=12, help="labels per session")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--no-finetune", action="store_true")
    parser.add_argument("--quiet-clients", action="store_true",
                        help="browsers do not autoplay the videos (on one small machine the 10 clients' video "
                             "decoding otherwise competes with the server for the same cores)")
    parser.add_argument("--no-write", action="store_true", help="do not write BENCHMARKS.md")
    parser.add_argument("--out", type=Path, default=REPO / "test-artifacts" / "bench_load.json")
    args = parser.parse_args()
    import tempfile

    rows = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix=f"prefine-load-{backend}-") as tmp:
            row = run_load(backend, args.sessions, args.labels, Path(tmp), finetune=not args.no_finetune,
                           quiet=args.quiet_clients)
        print(json.dumps(row), flush=True)
        rows.append(row)
    args.out.parent.mkdir(exist_ok=True)
    kept = json.loads(args.out.read_text()) if args.out.is_file() else []  # rows of the other client setting stay
    key = lambda r: (r["backend"], r.get("clients", "videos playing"), r["sessions"])  # noqa: E731  (older rows: playing)
    rows = [r for r in kept if key(r) not in {key(n) for n in rows}] + rows
    args.out.write_text(json.dumps(rows, indent=1))
    if not args.no_write:
        write_benchmarks(rows=rows)
    return 0 if all(not r["problems"] and not r["errors"] for r in rows) else 1


def write_benchmarks(rows: list[dict] | None = None, soak: dict | None = None) -> None:
    """Rewrite BENCHMARKS.md's load section (``reliability``) from ``rows``, and its soak section (``soak``) from
    ``soak``; a section not given is left as it stands. (One section held both, rewritten from the other's file in
    test-artifacts, which a clone never has: a soak dropped the load table.)"""
    from prefine_core.report import markdown_table, write_section

    parts = ["## Reliability: load and soak", ""]
    if rows:
        parts += [f"**Load** — `.venv/bin/python scripts/bench_load.py --sessions {rows[0]['sessions']} "
                  f"--labels {rows[0]['labels_each']} [--quiet-clients]`", "",
                  "One headless Chromium, one browser context per labeller, each labelling by keyboard under its own "
                  "name against one `streamlit run` of the app, while a PREFINE fine-tune runs in the background "
                  "(2 shared CPU cores). Latency: key press → the next pair's id on screen. "
                  "*lost* = acknowledged choices missing from the store afterwards. *clients*: `videos playing` — "
                  "every context autoplays and loops the pair video as a person's browser does, so here ten "
                  "browsers decode video on the same 2 cores as the server; `videos paused` — `--quiet-clients`, "
                  "closer to ten people on their own machines. *server CPU s*: CPU time the app server used "
                  "during the run (compare with *wall s*).", "",
                  markdown_table([{"backend": r["backend"], "clients": r.get("clients", "videos playing"),
                                   "sessions": r["sessions"], "choices": r["choices"],
                                   "stored": r["stored"], "lost": len(r["problems"]), "p50 s": r["p50_s"],
                                   "p95 s": r["p95_s"], "max s": r["max_s"], "wall s": r["wall_s"],
                                   "fine-tune steps meanwhile": r.get("steps_during", "—"),
                                   "server CPU s": r.get("server_cpu_s", "—"), "load avg": r.get("load_average_1min", "—"),
                                   "session errors": len(r["errors"])} for r in rows]), "",
                  "Measured: " + "; ".join(f"{r['backend']}/{r.get('clients', 'videos playing')}: {r['machine']}"
                                           for r in rows if r.get("machine")) + ".", "",
                  "Where *stored* exceeds *choices*, a session's last choice was stored but its next pair took longer "
                  "than the 60 s wait, so it was not counted as acknowledged. What limits the latency here (ten "
                  "browsers, a fine-tune and the server on the same 2 cores: the server itself used about a tenth of "
                  "one core) is discussed in RELIABILITY.md.", ""]
        write_section("reliability", "\n".join(parts))
    if soak:
        parts = [f"**Soak** — `.venv/bin/python scripts/soak.py --minutes {soak['minutes']}` · {soak['machine']}", "",
                  "One browser session labelling through the synthetic teacher's choices (new pairs added as they run "
                  "out), sampling the app server's resident memory and open file descriptors.", "",
                  markdown_table([{"": k, **v} for k, v in soak["table"].items()]), "",
                  f"{soak['labels']} choices acknowledged on screen, {soak['stored']} in the store, "
                  f"{len(soak.get('missing', []))} missing, {soak['n_errors']} session errors; choice → next pair "
                  f"p50 {soak['p50_s']:.2f} s, p95 {soak['p95_s']:.2f} s. Server RSS change after the first minute: "
                  f"{soak['rss_growth_mb_after_warmup']:+.1f} MB; open file descriptors: {soak['fd_growth_after_warmup']:+d}"
                  + (". Choices a minute: {:g} in the first five minutes, {:g} in the last five.".format(
                      *soak["choices_per_minute_first_last_5"]) if "choices_per_minute_first_last_5" in soak else "."),
                  ""]
        write_section("soak", "\n".join(parts))


if __name__ == "__main__":
    sys.exit(main())
