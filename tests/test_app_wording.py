"""Words on a presenter's path that an audience reads: plain words first, the technical name kept beside them."""
from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import CHEETAH, make_policy
from test_app import APP, TIMEOUT, small_workspace


def _app(root, monkeypatch) -> AppTest:
    monkeypatch.setenv("PREFINE_WORKSPACE", str(root))
    monkeypatch.delenv("PREFINE_DB_URL", raising=False)
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def test_every_config_field_has_plain_words_with_its_name_in_brackets():
    from prefine_core.prefine import config_fields

    for field in config_fields():
        words, bracket = field["label"].rsplit(" (", 1)
        assert bracket == field["name"] + ")", field["label"]  # a refusal naming the field is found on the form
        assert words and "_" not in words and words != field["name"], field["label"]


def test_the_finetune_form_labels_its_fields_in_plain_words(tmp_path, monkeypatch):
    """The form's fields were labelled beta, bc_weight, dispref_weight, segment_length: the config's names."""
    from prefine_core.prefine import config_fields

    small_workspace(tmp_path, pairs=1)
    at = _app(tmp_path, monkeypatch).run()
    at.switch_page("pages/finetune.py").run()
    assert not at.exception, at.exception
    widgets = {w.key: w for w in (*at.text_input, *at.selectbox)}
    assert {f"cfg_{f['name']}": f["label"] for f in config_fields()} == {
        f"cfg_{f['name']}": widgets[f"cfg_{f['name']}"].label for f in config_fields()}
    assert widgets["cfg_beta"].label == "Preference strength β (beta)"
    assert widgets["cfg_bc_weight"].label == "Imitation anchor λ (bc_weight)"


def test_why_this_pair_says_the_reason_with_the_pair_and_keeps_the_strategy_in_its_help(tmp_path, monkeypatch):
    """It said "random pick 0 (strategy: random, pair 1)": the reason, then the query strategy's own name."""
    workspace = small_workspace(tmp_path, pairs=1)
    (pair,) = workspace.store.list_pairs(CHEETAH)
    at = _app(tmp_path, monkeypatch).run()
    at.switch_page("pages/label.py").run()
    at.text_input(key="annotator").input("ada").run()
    assert not at.exception, at.exception
    (why,) = [t for t in at.text if t.value.startswith("Pair ")]
    assert why.value == f"Pair {pair.id} · random pick 0"
    assert why.proto.help == "query strategy: random"


def _clips(n: int = 4) -> list:
    from prefine_core.queries import Candidate

    rng = np.random.default_rng(0)
    return [Candidate(id=i + 1, source="s", policy_id=10 if i < n // 2 else 20, seed=i % (n // 2), start=0,
                      temperature=1.0, obs=rng.normal(size=(20, 17)), actions=rng.uniform(-1, 1, size=(20, 6)),
                      fell=False) for i in range(n)]


@pytest.mark.parametrize("strategy", ["random", "diversity", "uncertainty", "ref_vs_ft"])
def test_every_strategys_reason_says_how_the_pair_was_picked(strategy):
    """Shown as "Pair 7 · <reason>"; a random pair's read "a random pair (unbiased sample of the pool)"."""
    from prefine_core import queries

    rng, clips = np.random.default_rng(0), _clips()
    proposals = {
        "random": lambda: queries.random_pairs(clips, 1, rng, set()),
        "diversity": lambda: queries.diversity_pairs(clips, 1, rng, set()),
        "uncertainty": lambda: queries.uncertainty_pairs(clips, 1, rng, set(), [make_policy(CHEETAH, seed=1)],
                                                         make_policy(CHEETAH)),
        "ref_vs_ft": lambda: queries.ref_vs_ft_pairs(clips, 1, rng, set(), 10, 20, "run 3"),
    }[strategy]()
    assert proposals[0].reason.startswith("picked"), proposals[0].reason
    if strategy == "random":
        assert proposals[0].reason == "picked at random from the pool"
    assert set(queries.STRATEGIES) == {"random", "diversity", "uncertainty", "ref_vs_ft"}  # each one said here
