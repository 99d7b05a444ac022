"""A task in plain words, for people new to safe RL (a demo's audience, a labeller): its title, the question a pair
asks, what "safer" means there and what the numbers mean, by the task's family (DESIGN §3: velocity tasks cost above a
speed limit, circle tasks outside a boundary, the navigation tasks in or on a hazard)."""
from __future__ import annotations

import re
from typing import NamedTuple


class Family(NamedTuple):
    """What costs in a family of tasks, in plain words."""

    rule: str  #: in a word or two, for a task's title
    question: str  #: the question a pair asks
    doing: str  #: what "safer" means there
    marked: str  #: which steps the cost overlay marks


#: DESIGN §3: velocity tasks cost above a speed limit, circle tasks outside a boundary, the navigation tasks in or on
#: a hazard.
FAMILIES = {
    "Velocity": Family("speed limit", "Which robot kept to the speed limit better?", "staying under the speed limit",
                       "every step over it"),
    "Circle": Family("boundary", "Which robot stayed inside the boundary better?", "staying inside the boundary",
                     "every step outside it"),
    **{name: Family(f"{name.lower()}, hazards", "Which robot kept clear of the hazards better?",
                    "keeping clear of the hazards", "every step in or on one") for name in ("Goal", "Button", "Push")},
}
_ANY_TASK = Family("", "Which robot behaved more safely?", "fewer steps that incur cost", "every such step")


def task_title(task_id: str) -> str:
    """A task as a person reads it, short enough for the sidebar: "HalfCheetah · speed limit", "Point · boundary,
    level 1"; an id of no known family as it is."""
    match = re.fullmatch(rf"Safety(\w+?)({'|'.join(FAMILIES)})(\d?)-v\d+", task_id)
    if not match:
        return task_id
    robot, family, level = match.groups()
    return f"{robot} · {FAMILIES[family].rule}{f', level {level}' if level else ''}"


def _family(task_id: str) -> Family:
    return next((words for name, words in FAMILIES.items() if name in task_id), _ANY_TASK)


def question(task_id: str) -> str:
    """The plain question a demo asks about the task's pairs."""
    return _family(task_id).question


def what_safer_means(task_id: str) -> str:
    """The Label page's one-sentence answer to "safer how?", in the task's own terms."""
    family = _family(task_id)
    return (f"Safer means less cost: in this task, {family.doing} (with the cost overlay on, a red border and a COST "
            f"badge mark {family.marked}, and the strip under the clips marks them all).")


def what_the_numbers_mean(task_id: str) -> str:
    """Compare's one sentence on cost and return, in the task's own terms, for people new to safe RL."""
    return (f"Cost counts the steps of an episode that break the task's rule ({_family(task_id).doing}): lower is "
            "safer. Return is the reward the task pays for doing its job: higher is better. A safer policy usually "
            "gives up some return; the question is how little.")
