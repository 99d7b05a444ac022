"""Store test fixtures: every store test runs on a SQLite file and on a real PostgreSQL server.

PostgreSQL comes from ``PREFINE_TEST_PG_URL`` (``scripts/start_test_postgres.sh`` prints one);
each test gets a fresh schema, dropped afterwards. Without the URL the PostgreSQL half is skipped
in a local run and fails under CI (``CI`` set), where it must not silently vanish.
"""
from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from conftest import CHEETAH, skip_unless_required

PG_ENV = "PREFINE_TEST_PG_URL"


def _pg_base_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        skip_unless_required(f"{PG_ENV} is not set: run scripts/start_test_postgres.sh and export the URL it prints")
    return url


def _admin(url: str):
    import sqlalchemy

    return sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)


@pytest.fixture
def pg_schema_url():
    """A URL whose connections live in a fresh, empty schema of the test database."""
    base = _pg_base_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = _admin(base)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'prefine.db'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def store(store_url):
    from prefine_core.store import Store

    s = Store(store_url)
    yield s
    s.close()


@pytest.fixture(scope="session")
def cheetah_episode():
    """One real 120-step rollout of a random-init policy on HalfCheetah (seed 0)."""
    from conftest import make_policy
    from prefine_core.envs import SafetyTask
    from prefine_core.rollout import collect

    with SafetyTask(CHEETAH) as task:
        return collect(make_policy(CHEETAH), task, seed=0, max_steps=120)


def windows(episode, n: int, length: int = 5):
    """``n`` distinct clips of a real episode."""
    step = max(1, (episode.length - length) // max(n - 1, 1))
    return [episode.window(min(i * step, episode.length - length), length) for i in range(n)]


def fill(store, folder, episode, n_traj: int = 4, n_pairs: int = 3) -> tuple[list[int], list[int]]:
    """Trajectories from windows of a real rollout, and pairs over them."""
    import itertools

    ids = [store.add_trajectory(w, None, "test", folder) for w in windows(episode, n_traj)]
    combos = list(itertools.combinations(ids, 2))[:n_pairs]
    return ids, [store.add_pair(a, b, "random", 0.0, "test pair") for a, b in combos]


def costly(trajectory, cost: float):
    """The same clip with every step's cost set (to build known orderings for the teacher)."""
    from dataclasses import replace

    return replace(trajectory, costs=np.full(trajectory.length, cost, dtype=np.float32))


def many_pairs(store, folder, episode, n_pairs: int) -> list[int]:
    """``n_pairs`` pairs over windows of one real rollout, written in one transaction."""
    import itertools

    n_traj = next(k for k in range(2, 1000) if k * (k - 1) // 2 >= n_pairs)
    with store.batch() as batch:
        ids = [batch.add_trajectory(w, None, "load", folder) for w in windows(episode, n_traj)]
        return [batch.add_pair(a, b, "random", 0.0, "load test") for a, b in itertools.islice(itertools.combinations(ids, 2), n_pairs)]
