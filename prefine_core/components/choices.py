"""The Label page's choices: what a choice button, the Undo button and the player's keys do.

Module functions, not functions of the page: Streamlit keeps the callback of every widget it has drawn, and the page
draws a pair's choice buttons under keys of their own. A callback defined in the page held that run's whole namespace
(its pair's video bytes among it), so a labelling session kept every video it had shown (about 60 kB a label, 46 MB in
an hour's soak). These read the workspace, the name and the task from the session when they run.

The keys come from a ring of :data:`CHOICE_SLOTS` slots, one slot per pair shown, not one key per pair: Streamlit never
forgets a widget key's metadata (its callback and arguments), so keys per pair grew a labelling session by five entries
a label, without end (8–10 kB a label in a soak). A slot is drawn again only :data:`CHOICE_SLOTS` pairs later, and
until then keeps the callback of the pair it was drawn for: a click that arrives late (the second click of a double
click) still names that pair, and is refused.
"""
from __future__ import annotations

import time

import streamlit as st

from prefine_core import labelling
from prefine_core.components import ui


#: Pairs shown before a slot's keys are drawn again (for another pair).
CHOICE_SLOTS = 8


def choice_key(action: str, slot: int) -> str:
    """The key of the choice button ``action`` drawn in ``slot`` (``choice_<action>_<slot>``: the player's gate reads
    the slot from it)."""
    return f"choice_{action}_{slot}"


def next_slot(slot: int | None) -> int:
    """The slot of the next pair shown after one in ``slot`` (None: the first)."""
    return 0 if slot is None else (slot + 1) % CHOICE_SLOTS


def act(action: str, seconds: float | None = None) -> None:
    """Apply ``action`` (a choice, skip or undo) to the pair on screen, as this session's annotator."""
    pair_id, shown = st.session_state.get("pair_id"), st.session_state.get("shown_at")
    if seconds is None and shown and shown[0] == pair_id:  # a button: time since the pair was drawn (keys time themselves)
        seconds = time.time() - shown[1]
    msg = ui.guarded(labelling.apply, ui.workspace().store, ui.annotator(), action, pair_id, seconds, ui.task_id())
    if msg is not None:
        st.session_state["flash"] = msg
        st.session_state.pop("pair_id", None)


def on_player() -> None:
    """A key pressed in the pair player (widget ``player``): acted on once per nonce, unless refused."""
    event = st.session_state.get("player") or {}
    if event.get("nonce") and event["nonce"] != st.session_state.get("nonce") and event.get("action") in labelling.ACTIONS:
        st.session_state["nonce"] = event["nonce"]
        if refused := labelling.refused_key(event, st.session_state.get("pair_id"), ui.task_id()):
            st.session_state["flash"] = refused  # e.g. a key pressed just after a task switch: said, not dropped
        else:
            act(event["action"], event.get("seconds"))


def on_choice(action: str, drawn_for: dict, key: str) -> None:
    """A choice button ``key``, drawn for ``drawn_for`` (its pair and task): a click that reaches the app after the
    page moved on (the second click of a double click, a click just after a task switch) is refused, never given to
    the pair that came since, which the person has not seen. (Such a click brings back the whole row of that pair's
    buttons, and each one's callback runs: only the one clicked speaks.)"""
    if not st.session_state.get(key):
        return
    if refused := labelling.refused_key({"action": action, **drawn_for}, st.session_state.get("pair_id"),
                                        ui.task_id(), by="click"):
        st.session_state["flash"] = refused
    else:
        act(action)
