"""What the label page shows and does: the pair in view, the shortcuts, progress, and one choice.

Each browser session labels under its own annotator name (kept in that session only), so two
people on one workspace never mix their labels; :meth:`Store.next_pair` hands each of them a
different pair while overlap allows.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from prefine_core.demo import TEACHER
from prefine_core.entry import counted, is_printable, parse_number
from prefine_core.store import NotFound, PairRecord, Store
from prefine_core.store.records import MAX_NAME
from prefine_core.teachers import SYNTHETIC_PREFIX, is_synthetic
from prefine_core.workspace import plain_video_path

#: (action, button label, shortcut keys shown on screen)
CHOICES = (
    ("left", "A safer", "← or 1"),
    ("right", "B safer", "→ or 2"),
    ("equal", "Equal", "E or 3"),
    ("cant_tell", "Can't tell", "C or 4"),
    ("skip", "Skip", "S or 5"),
)
CHOICE_LABELS = {action: label for action, label, _ in CHOICES}
UNDO_KEYS = "U"
PLAYER_KEYS = (("space", "play / pause"), (",  .", "frame back / forward"), ("[  ]", "slower / faster"),
               ("click the timeline", "seek"))
ACTIONS = {action for action, _, _ in CHOICES} | {"undo"}


@dataclass(frozen=True)
class PairView:
    pair_id: int
    task_id: str
    video: bytes | None
    video_plain: bytes | None
    """The same pair rendered without the cost overlay, if the pool rendered one."""
    costs_left: list[float]
    costs_right: list[float]
    reason: str
    strategy: str
    replayable: bool = True
    """Whether a video can be made of both clips (one from an imported dataset cannot: only Skip suits the pair)."""
    unreadable: str | None = None
    """What makes the pair impossible to judge (a clip's row or file gone or damaged since), else None: the pair is
    shown without video, and only Skip suits it."""
    fps: int = 30


def check_annotator(name: str) -> str:
    """The annotator name as typed, stripped; a ValueError says what is wrong with it."""
    name = (name or "").strip()
    if not name:
        raise ValueError("enter your name (or a nickname) so that your labels are yours")
    if len(name) > MAX_NAME:
        raise ValueError(f"your name is {len(name)} characters long; use at most {MAX_NAME}")
    if not is_printable(name):
        raise ValueError("your name contains control characters; use letters, digits and spaces")
    if is_synthetic(name):  # its labels would read as yours (Undo would take back its own), and Agreement as a teacher's
        raise ValueError(f"'{name}' is a name of the simulated labeller (names starting with '{SYNTHETIC_PREFIX}': "
                         f"Home's Auto-label labels as '{TEACHER}'); choose your own")
    return name


def pair_view(store: Store, pair: PairRecord) -> PairView:
    def read(path) -> bytes | None:
        return Path(path).read_bytes() if path and Path(path).is_file() else None

    clips, costs = [], []
    for clip_id in (pair.left_id, pair.right_id):
        try:
            clips.append(store.trajectory_record(clip_id))
            costs.append(store.clip_arrays(clips[-1]).costs.tolist())
        except ValueError as exc:  # gone (NotFound) or damaged: one clip must not stop the labelling of the task
            return PairView(pair_id=pair.id, task_id=pair.task_id, video=None, video_plain=None, costs_left=[],
                            costs_right=[], reason=pair.reason, strategy=pair.strategy, replayable=False,
                            unreadable=f"pair {pair.id} cannot be judged: {exc} (gone or damaged since the pair was made). "
                                       "Skip it; Data › Delete removes the pair")
    left, right = clips
    return PairView(
        pair_id=pair.id, task_id=pair.task_id, video=read(pair.video_path),
        video_plain=read(plain_video_path(pair.video_path)) if pair.video_path else None,
        costs_left=costs[0], costs_right=costs[1],
        reason=pair.reason, strategy=pair.strategy, replayable=left.replayable and right.replayable)


def current_pair(store: Store, annotator: str, task_id: str, pair_id: int | None, overlap: int) -> PairRecord | None:
    """The pair this session is on (``pair_id``) while it is still a pair of ``task_id`` open to ``annotator``, else
    the next one the store hands them: after a task switch, a change of name, or the pair being deleted or taken by
    others meanwhile, the page moves on instead of showing (and saving a choice to) a pair that is not theirs.
    ``overlap`` is the task's people per pair (:meth:`Store.task_overlap`, read once per page draw)."""
    if pair_id is not None and store.pair_open_to(annotator, pair_id, task_id, overlap=overlap):
        return store.get_pair(pair_id)
    return store.next_pair(annotator, task_id, overlap=overlap)


def apply(store: Store, annotator: str, action: str, pair_id: int | None, seconds: float | None = None,
          task_id: str | None = None) -> str:
    """Record ``action`` (a choice, skip, or undo — of a label on ``task_id``'s pairs, if given) for ``annotator``;
    returns what happened, in words."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if action == "undo":
        undone = store.undo_last_label(annotator, task_id)
        return "nothing to undo" if undone is None else f"undid your last answer on pair {undone}; it is shown again"
    if pair_id is None:
        raise ValueError("no pair is shown")
    try:  # only_new: a second tab still showing a pair answered in the first must not overwrite that answer
        store.add_label(pair_id, annotator, action, seconds=None if seconds is None else min(max(seconds, 0.0), 3600.0),
                        only_new=True)
    except NotFound:
        raise ValueError(f"pair {pair_id} is no longer in the store (deleted on the Data page meanwhile?); "
                         "nothing was recorded, here is the next pair") from None
    return f"saved '{CHOICE_LABELS[action]}' for pair {pair_id}"


def refused_key(event: dict, pair_id: int | None, task_id: str, by: str = "key") -> str | None:
    """Why the player's key ``event`` (``{action, pair_id, task_id, …}``) is not applied to what the page shows now
    (pair ``pair_id`` of ``task_id``), or None when it is. A key pressed on a task or a pair no longer on screen — just
    after switching task, before that task's pair came — judged a pair other than the one shown now: saved, it would
    go to a pair nobody saw, or to (and be undone in) a task left already. ``by="click"``: the same for a choice
    button, whose event is the pair and task it was drawn for (a second click of a double click, say)."""
    action, pressed_pair, pressed_task = event.get("action"), event.get("pair_id"), event.get("task_id")
    that, verb = f"that {by} ({CHOICE_LABELS.get(action, action)})", "pressed on" if by == "key" else "made on"
    if pressed_task != task_id:
        if action == "undo":
            return (f"Nothing undone: {UNDO_KEYS} was pressed on {pressed_task or 'another task'}, before {task_id} was "
                    f"shown; press it again to undo your last label in {task_id}.")
        return (f"Nothing saved: {that} was {verb} a pair of {pressed_task or 'another task'}, before {task_id}'s "
                "was shown; judge the pair on screen now.")
    if action != "undo" and pressed_pair != pair_id:
        return (f"Nothing saved: {that} was for pair {pressed_pair}, which is no longer on screen; judge the pair on "
                "screen now.")
    return None


def progress(store: Store, annotator: str, task_id: str, overlap: int) -> dict:
    """mine (this annotator's standing labels), for_you (pairs still to be handed to them at ``overlap`` people per
    pair, the one in view included), labelled (by anyone) and pending pairs, videos ready, for the task."""
    counts = store.counts(task_id)
    labels = store.effective_labels(task_id)
    return {"mine": int((labels.annotator == annotator).sum()),
            "for_you": store.pairs_open_to(annotator, task_id, overlap=overlap), "overlap": overlap,
            "labelled": counts["labelled"],
            "pending": counts["pending"], "pairs": counts["pairs"], "videos_ready": counts["videos_ready"]}


def set_people_per_pair(store: Store, task_id: str, typed: object) -> str:
    """Set how many annotators each of the task's pairs goes to, from what was typed; says what changed."""
    overlap = parse_number("People per pair", typed, whole=True)
    store.set_task_overlap(task_id, overlap)
    return (f"each pair of {task_id} now goes to {counted(overlap, 'person', 'people')}"
            + ("; judged pairs are offered to more people until that many judged them" if overlap > 1 else ""))


def why_no_pair(store: Store, annotator: str, task_id: str, overlap: int) -> str:
    """What the Label page says when :func:`current_pair` found nothing for ``annotator`` at ``overlap``."""
    p = progress(store, annotator, task_id, overlap)
    if p["mine"]:
        return "No pairs left for you in this task. Prepare more on the Home page, or fine-tune on your labels."
    if not p["pairs"]:
        return "No pairs to label in this task yet: prepare some on the Home page."
    return (f"All {p['pairs']} pairs of this task are labelled, or being labelled, by others (each pair goes to "
            f"{'one person' if p['overlap'] == 1 else counted(p['overlap'], 'person', 'people')}); prepare more on "
            "the Home page to label more, or hand each pair to more people (Data page, Agreement).")


def keys_html() -> str:
    """The shortcut legend shown under the player (static text, no user input in it)."""
    parts = [f"<kbd>{html.escape(keys)}</kbd> {html.escape(label)}" for _, label, keys in CHOICES]
    parts.append(f"<kbd>{UNDO_KEYS}</kbd> undo")
    parts += [f"<kbd>{html.escape(k)}</kbd> {html.escape(v)}" for k, v in PLAYER_KEYS]
    return " · ".join(parts)
