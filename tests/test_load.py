"""Load, small: a few browser sessions label one workspace at once while a fine-tune runs, on SQLite
and on PostgreSQL; every acknowledged choice is counted in the store afterwards. The full version
(10 sessions, figures in BENCHMARKS.md) is ``scripts/bench_load.py``."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from bench_load import CHROMIUM, run_load  # noqa: E402
from conftest import skip_unless_required  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_browser_sessions_lose_no_label(backend, tmp_path):
    import os

    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM}")
    if backend == "postgres" and not os.environ.get("PREFINE_TEST_PG_URL"):
        skip_unless_required("PREFINE_TEST_PG_URL is not set: run scripts/start_test_postgres.sh and export the URL it prints")
    row = run_load(backend, sessions=3, labels=4, root=tmp_path, finetune=backend == "sqlite")
    assert row["errors"] == [] and row["problems"] == [], row
    assert row["choices"] == row["acknowledged"] == 12 and row["stored"] == 12, row
    if backend == "sqlite":
        assert row["status_during"] == "running", row  # the fine-tune really ran alongside
