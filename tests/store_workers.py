"""Code that runs in spawned worker processes; imports neither conftest nor torch, so they start fast."""
from __future__ import annotations


def label_worker(url: str, annotator: str, pair_ids: list[int], barrier) -> None:
    """Open the store, wait for the others, then write one label per pair as fast as it can."""
    from prefine_core.store import Store

    store = Store(url)
    barrier.wait(timeout=120)
    choices = ("left", "right", "equal", "cant_tell")
    for i, pair_id in enumerate(pair_ids):
        store.add_label(pair_id, annotator, choices[i % 4], seconds=0.1 * i)
    store.close()
