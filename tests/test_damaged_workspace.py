"""A workspace damaged after it was written (a row edited by hand, a file removed or cut short): what reads it says
what is wrong, by name, and never takes other data down with it."""
from __future__ import annotations

import pytest

from conftest import CHEETAH, make_policy


@pytest.fixture
def ws(tmp_path):
    """One policy, 6 real clips, 3 pairs, labelled left, right, left."""
    from prefine_core.envs import SafetyTask
    from prefine_core.policy import save_policy
    from prefine_core.rollout import collect
    from prefine_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws", shipped=None)
    policy_id = ws.store.add_policy("ref", save_policy(make_policy(CHEETAH), ws.policies_dir / "ref.safetensors"),
                                    CHEETAH, "reference")
    with SafetyTask(CHEETAH) as task:
        episode = collect(make_policy(CHEETAH), task, seed=0, max_steps=60)
    ids = [ws.store.add_trajectory(episode.window(10 * i, 10), policy_id, "test", ws.trajectories_dir) for i in range(6)]
    for (a, b), choice in zip(zip(ids[::2], ids[1::2]), ("left", "right", "left")):
        ws.store.add_label(ws.store.add_pair(a, b, "random", 0.0, "test"), "ann", choice)
    return ws


def test_deleting_a_pair_removes_its_own_videos_not_the_file_its_row_names(ws):
    """Deleting a pair deleted whatever file its row's video_path named: a row edited to name a policy's checkpoint
    took the checkpoint with it."""
    from pathlib import Path

    first, second = ws.store.list_pairs(CHEETAH)[:2]
    policy = Path(ws.store.list_policies()[0].path)
    ws.store.set_pair_video(first.id, policy)  # the damage
    own = ws.pair_video_path(second.id)
    own.write_bytes(b"video")
    ws.store.set_pair_video(second.id, own)
    assert ws.delete_pairs([first.id, second.id]) == 2
    assert policy.is_file() and not own.exists()
