"""Agreement statistics against hand-computed numbers, and on a real store with known cost orderings."""
from __future__ import annotations

import math

import pytest

from store_backends import cheetah_episode, costly, windows  # noqa: F401


def test_cohen_kappa_by_hand():
    from prefine_core.agreement import cohen_kappa

    # p_o = 4/6; both raters say left 3 times of 6, so p_e = 0.5·0.5 + 0.5·0.5 = 0.5; κ = (2/3 − 1/2)/(1/2) = 1/3
    a = ["left", "left", "right", "right", "left", "right"]
    b = ["left", "right", "right", "right", "left", "left"]
    assert cohen_kappa(a, b) == pytest.approx(1 / 3)
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert cohen_kappa(["left"] * 3, ["left"] * 3) == 1.0
    assert math.isnan(cohen_kappa([], []))
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa(["left"], [])


def test_krippendorff_alpha_by_hand():
    from prefine_core.agreement import krippendorff_alpha_nominal

    # coincidences: o_LL = 2, o_LR = o_RL = 1 + 1, o_RR = 2 + 1 -> n_L = 4, n_R = 5, n = 9
    # α = 1 − (n − 1)(o_LR + o_RL) / (2 n_L n_R) = 1 − 8·4/40 = 0.2
    units = [["left", "left"], ["left", "right"], ["right", "right"], ["right", "right", "left"], ["left"]]
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.2)
    assert krippendorff_alpha_nominal([["left", "left"], ["right", "right"]]) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha_nominal([["left"]]))


def test_report_on_a_store(tmp_path, cheetah_episode):
    from prefine_core.agreement import report
    from prefine_core.store import Store
    from prefine_core.teachers import SyntheticTeacher, label_pending

    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    clips = windows(cheetah_episode, 4, length=20)
    ids = [store.add_trajectory(costly(c, cost), None, "t", tmp_path) for c, cost in zip(clips, (0.0, 1.0, 2.0, 3.0))]
    # the lower-cost clip is always on the left, so the truth is "left" for every pair
    pairs = [store.add_pair(ids[i], ids[j], "random", 0.0, "r") for i, j in ((0, 1), (1, 2), (2, 3), (0, 3))]
    for pair, a, b in zip(pairs, ["left", "left", "right", "left"], ["left", "right", "right", "equal"]):
        store.add_label(pair, "alice", a)
        store.add_label(pair, "bob", b)
    store.add_label(pairs[0], "carol", "skip")  # skips are not judgements
    assert label_pending(store, SyntheticTeacher()) == 4
    store.add_label(store.add_pair(ids[1], ids[3], "random", 0.0, "r"), "dave", "left")  # a pair nobody else judged
    result = report(store)
    by_name = {row["annotator"]: row for row in result["annotators"]}
    assert by_name["synthetic-teacher"]["agreement"] == 1.0
    assert by_name["alice"]["agreement"] == 0.75 and by_name["bob"]["agreement"] == 0.25
    assert by_name["bob"]["decided"] == 3 and by_name["bob"]["decided_agreement"] == pytest.approx(1 / 3)
    assert "carol" not in by_name
    kappa = {(r["annotator_a"], r["annotator_b"]): r["kappa"] for r in result["kappa"]}
    # alice vs teacher: p_o = 3/4, p_e = (3/4)(1) -> κ = 0; both rate "left" 3 or 4 times
    assert kappa[("alice", "synthetic-teacher")] == pytest.approx(0.0)
    assert result["overlapping_pairs"] == 4 and result["judgements"] == 13
    # dave shares no pair with anyone: no κ row with him, but counted as left out (3 of the 6 annotator pairs)
    assert len(result["kappa"]) == 3 and result["kappa_no_common_pairs"] == 3
    assert result["synthetic"] == ["synthetic-teacher"]
    # people alone (alice, bob): units LL, LR, RR, LE; each ordered pair weighs 1 -> n_L = 4, n_R = 3, n_E = 1, n = 8,
    # disagreeing weight 4: α = 1 − 7·4 / (2·(4·3 + 4·1 + 3·1)) = 1 − 28/38
    assert result["krippendorff_alpha_people"] == pytest.approx(1 - 28 / 38)
    # units (alice, bob, teacher): LLL, LRL, RRL, LEL; each ordered pair weighs 1/2:
    # o_LL = 3 + 1 + 1 = 5, o_LR = o_RL = 1 + 1, o_RR = 1, o_LE = o_EL = 1 -> n_L = 8, n_R = 3, n_E = 1, n = 12
    # α = 1 − 11·(2 + 2 + 1 + 1) / (2·(8·3 + 8·1 + 3·1)) = 1 − 66/70
    assert result["krippendorff_alpha"] == pytest.approx(1 - 66 / 70)
