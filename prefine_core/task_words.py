"""A task in plain words, for people new to safe RL (a demo's audience, a labeller): its title, the question a pair
asks, what "safer" means there and what the numbers mean, by the task's family (DESIGN §3: velocity tasks cost above a
speed limit, circle tasks outside a boundary, the navigation tasks in or on a hazard)."""
from __future__ import annotations

import re

#: What costs in each family of tasks, in plain words (DESIGN §3: velocity tasks cost above a speed limit, circle
#: tasks outside a boundary): the question a demo asks, what "safer" means there, and which steps the overlay marks.
FAMILIES = {
    "Velocity": ("Which robot kept to the speed limit better?", "staying under the speed limit", "every step over it"),
    "Circle": ("Which robot stayed inside the boundary better?", "staying inside the boundary", "every step outside it"),
    **{family: ("Which robot kept clear of the hazards better?", "keeping clear of the hazards", "every step in or on one")
       for family in ("Goal", "Button", "Push")},
}
_ANY_TASK = ("Which robot behaved more safely?", "fewer steps that incur cost", "every such step")

#: Each family's rule in a word or two, for a task's title.
RULES = {"Velocity": "speed limit", "Circle": "boundary", "Goal": "goal, hazards", "Button": "button, hazards",
         "Push": "push, hazards"}


def task_title(task_id: str) -> str:
    """A task as a person reads it, short enough for the sidebar: "HalfCheetah · speed limit", "Point · boundary,
    level 1"; an id of no known family as it is."""
    match = re.fullmatch(rf"Safety(\w+?)({'|'.join(RULES)})(\d?)-v\d+", task_id)
    if not match:
        return task_id
    robot, family, level = match.groups()
    return f"{robot} · {RULES[family]}{f', level {level}' if level else ''}"


def _family(task_id: str) -> tuple[str, str, str]:
    return next((words for family, words in FAMILIES.items() if family in task_id), _ANY_TASK)


def question(task_id: str) -> str:
    """The plain question a demo asks about the task's pairs."""
    return _family(task_id)[0]


def what_safer_means(task_id: str) -> str:
    """The Label page's one-sentence answer to "safer how?", in the task's own terms."""
    _, doing, marked = _family(task_id)
    return (f"Safer means less cost: in this task, {doing} (with the cost overlay on, a red border and a COST badge "
            f"mark {marked}, and the strip under the clips marks them all).")


def what_the_numbers_mean(task_id: str) -> str:
    """Compare's one sentence on cost and return, in the task's own terms, for people new to safe RL."""
    _, doing, _ = _family(task_id)
    return (f"Cost counts the steps of an episode that break the task's rule ({doing}): lower is safer. Return is the "
            "reward the task pays for doing its job: higher is better. A safer policy usually "
            "gives up some return; the question is how little.")
