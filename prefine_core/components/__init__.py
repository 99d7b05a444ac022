"""Streamlit custom components (the only place in prefine_core that imports streamlit).

Each component is a folder with a plain ``index.html`` that speaks Streamlit's component protocol
over postMessage, so nothing needs an npm build.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components

_pair_player = components.declare_component("pair_player", path=str(Path(__file__).parent / "pair_player"))
#: The page's choice buttons (keys ``choice_<action>_<slot>``, :func:`prefine_core.components.choices.choice_key`)
#: take no click until the player has shown their pair: the player's own rule (``body .st-key-choice_…``, more
#: specific) lets that pair's through. Drawn with the page, so that it holds from the first moment, before the player's
#: frame has loaded.
_CHOICES_HELD = '<style>[class*="st-key-choice_"] button { pointer-events: none; }</style>'
#: Choice and Undo labels wrap onto two lines in a narrow column instead of being cut ("Can't …" at 1280 px, "A…",
#: "B…" at 1024 px: a presenter on a projector could not tell the buttons apart).
_CHOICE_LABELS_WRAP = ('<style>[class*="st-key-choice_"] button, .st-key-undo button { padding-left: 0.3rem; '
                       'padding-right: 0.3rem; } [class*="st-key-choice_"] button p, .st-key-undo button p '
                       '{ white-space: normal; overflow: visible; text-overflow: clip; line-height: 1.2; }</style>')


def hold_choice_buttons() -> None:
    """Draw the rule that holds every choice button (:data:`_CHOICES_HELD`), with the one that wraps their labels
    (:data:`_CHOICE_LABELS_WRAP`). A style-only ``st.html`` goes to
    Streamlit's event container, drawn apart from the page's elements: drawn only beside the player, on a page
    opened afresh it could land a few frames after the buttons, which took clicks meanwhile. The app draws it first
    thing on every page, the player again beside itself."""
    st.html(_CHOICES_HELD + _CHOICE_LABELS_WRAP)


def pair_player(view, show_cost: bool, keys_html: str, key: str, choice_slot: int, on_change=None,
                ack: str | None = None) -> dict | None:
    """The synchronised pair player for a :class:`prefine_core.labelling.PairView`, whose choice buttons are drawn
    in ``choice_slot`` (the player lets their clicks through once it shows the pair).

    Returns the latest event ``{action, pair_id, task_id, seconds, nonce}`` sent by a keyboard shortcut (the pair
    and task on screen when the key was pressed), or None; the caller handles each nonce once and hands the last one
    handled back as ``ack``: until it comes back (or the pair changes) the player takes no other key, and says so.
    """
    # Only the variant on show travels to the browser: each rerun re-sends the component's arguments,
    # and the video bytes are most of what a choice costs the server.
    plain = not show_cost and view.video_plain is not None
    hold_choice_buttons()
    return _pair_player(
        pair_id=view.pair_id, task_id=view.task_id, video=None if plain else view.video,
        video_plain=view.video_plain if plain else None, costs_left=view.costs_left,
        costs_right=view.costs_right, fps=view.fps, show_cost=show_cost, keys_html=keys_html,
        overlay={"top": 40, "clip_width": 256, "clip_height": 256, "gap": 8, "border": 4}, choice_slot=choice_slot,
        ack=ack, key=key, default=None, on_change=on_change)


def undo_keys(keys_html: str, task_id: str, key: str, on_change=None, ack: str | None = None) -> dict | None:
    """The pair player with no pair of ``task_id``: nothing shown but the legend, and only the undo key works (the
    screen after the last pair, where a keyboard labeller takes back the last choice). Same events as
    :func:`pair_player`."""
    return _pair_player(pair_id=None, task_id=task_id, video=None, video_plain=None, costs_left=[], costs_right=[], fps=30,
                        show_cost=True, keys_html=keys_html, overlay=None, choice_slot=None, ack=ack, key=key,
                        default=None, on_change=on_change)
