"""Nothing is lost under load: 8 processes write 200 labels each at the same moment, on SQLite and
on PostgreSQL, and every one of the 1600 labels is there afterwards."""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import sys
import types
from collections import Counter

from store_backends import cheetah_episode, many_pairs, pg_schema_url, store, store_url  # noqa: F401
from store_workers import label_worker

WORKERS, LABELS = 8, 200


@contextlib.contextmanager
def _bare_main():
    """Streamlit's AppTest (earlier tests, same process) installs app.py as ``__main__`` and leaves it there; a spawned
    worker re-runs ``__main__`` first, so it ran the app (opening a workspace, failing in bare mode). Start with none."""
    saved = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = saved


def test_concurrent_writers_lose_nothing(store, store_url, tmp_path, cheetah_episode):
    pair_ids = many_pairs(store, tmp_path, cheetah_episode, LABELS)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    workers = [ctx.Process(target=label_worker, args=(store_url, f"worker-{i}", pair_ids, barrier)) for i in range(WORKERS)]
    with _bare_main():
        for w in workers:
            w.start()
    for w in workers:
        w.join(timeout=300)
    assert [w.exitcode for w in workers] == [0] * WORKERS
    history = store.label_history()
    assert len(history) == WORKERS * LABELS
    assert len({h.id for h in history}) == WORKERS * LABELS
    assert Counter(h.annotator for h in history) == {f"worker-{i}": LABELS for i in range(WORKERS)}
    labels = store.effective_labels()
    assert len(labels) == WORKERS * LABELS
    assert sorted(labels.groupby("annotator").pair_id.apply(sorted).tolist()) == [sorted(pair_ids)] * WORKERS
    assert store.counts()["labelled"] == LABELS
