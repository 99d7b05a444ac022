"""Shared fixtures: tiny real policies and tasks (no mocks of the environment or torch)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("MUJOCO_GL", "egl")
# A test that opens "the" workspace (a page or command run without its own) must not write into the checkout's
# data/workspace, where a user's own labels live; a fresh folder per test session instead.
os.environ.setdefault("PREFINE_WORKSPACE", tempfile.mkdtemp(prefix="prefine-test-workspace-"))

CHEETAH = "SafetyHalfCheetahVelocity-v1"
HOPPER = "SafetyHopperVelocity-v1"
CIRCLE = "SafetyPointCircle1-v0"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def skip_unless_required(message: str) -> None:
    """Skip a test that needs PostgreSQL where there is none, unless the run requires it (``./studio test`` and CI
    set ``PREFINE_REQUIRE_POSTGRES``; a CI that sets ``CI`` alone counts too): there a missing server fails the
    test, never skips it unseen."""
    if os.environ.get("PREFINE_REQUIRE_POSTGRES") or os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def choice_button(at, action: str = "left"):
    """The Label page's ``action`` button for the pair on screen (drawn in its slot), in AppTest ``at``; None if none."""
    from prefine_core.components.choices import choice_key

    return next((b for b in at.button if b.key == choice_key(action, at.session_state["choice_slot"])), None) \
        if "pair_id" in at.session_state else None


def make_policy(task_id: str = CHEETAH, seed: int = 0, **meta_fields):
    """A randomly initialised policy with the right sizes for ``task_id``."""
    from prefine_core.envs import SafetyTask
    from prefine_core.policy import PolicyMeta, TanhGaussianPolicy

    with SafetyTask(task_id) as task:
        obs_dim, act_dim = task.obs_dim, task.act_dim
    torch.manual_seed(seed)
    return TanhGaussianPolicy(PolicyMeta(task_id=task_id, obs_dim=obs_dim, act_dim=act_dim, **meta_fields))


def clips_workspace(root, choices: tuple[str, ...] = ()):
    """A workspace at ``root``: one HalfCheetah policy, 6 real 10-step clips of one episode of it, 3 pairs of them,
    the first ones labelled by "ann" with ``choices``."""
    from prefine_core.envs import SafetyTask
    from prefine_core.policy import save_policy
    from prefine_core.rollout import collect
    from prefine_core.workspace import Workspace

    ws = Workspace.open(root, shipped=None)
    policy_id = ws.store.add_policy("ref", save_policy(make_policy(CHEETAH), ws.policies_dir / "ref.safetensors"),
                                    CHEETAH, "reference")
    with SafetyTask(CHEETAH) as task:
        episode = collect(make_policy(CHEETAH), task, seed=0, max_steps=60)
    ids = [ws.store.add_trajectory(episode.window(10 * i, 10), policy_id, "test", ws.trajectories_dir) for i in range(6)]
    pairs = [ws.store.add_pair(a, b, "random", 0.0, "test") for a, b in zip(ids[::2], ids[1::2])]
    for pair_id, choice in zip(pairs, choices):
        ws.store.add_label(pair_id, "ann", choice)
    return ws


@pytest.fixture
def cheetah_policy():
    return make_policy(CHEETAH)


@pytest.fixture
def policy_file(tmp_path, cheetah_policy):
    from prefine_core.policy import save_policy

    return save_policy(cheetah_policy, tmp_path / "policy.safetensors")


class PrivatePostgres:
    """A PostgreSQL cluster of the tests that stop or restart it (doing that to the shared test server
    would break other tests running at the same time)."""

    def __init__(self, data: Path, port: int):
        self.port, self.url = port, f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        self.ctl = ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(data), "-l",
                    str(data / "server.log"), "-w", "-t", "60"]

    def pg_ctl(self, *args: str) -> None:
        subprocess.run([*self.ctl, *args], check=True, capture_output=True)

    def start(self) -> None:
        self.pg_ctl("start", "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k /tmp")

    def schema_url(self, name: str) -> str:
        """The URL of a fresh, empty schema ``name`` in this cluster."""
        from store_backends import _admin

        with _admin(self.url).connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {name}")
        return f"{self.url}?options=-csearch_path%3D{name}"


@pytest.fixture(scope="session")
def private_postgres():
    if os.geteuid() != 0 or not (PG_BIN / "initdb").exists():
        pytest.skip("needs root and PostgreSQL 15 binaries to run a private cluster")
    # One cluster per pytest-xdist worker (gw0, gw1, …): two workers stopping and restarting one would break each
    # other's tests.
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    data = Path(f"/tmp/prefine-pg-faults{'-' + str(worker) if worker else ''}")
    if not (data / "PG_VERSION").is_file():
        data.mkdir(exist_ok=True)
        shutil.chown(data, "postgres", "postgres")
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                        "-A", "trust"], check=True, capture_output=True)
    cluster = PrivatePostgres(data, 55439 + worker)
    if subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(cluster.port)]).returncode:
        (data / "postmaster.pid").unlink(missing_ok=True)  # left by a killed session; nothing answers
        cluster.start()
    yield cluster
    subprocess.run([*cluster.ctl, "stop", "-m", "fast"], capture_output=True)
