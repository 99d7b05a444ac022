"""Page helpers shared by app.py and pages/: the cached workspace, the task in view, messages.

Kept apart from the library (it imports streamlit); pages stay thin by calling these.
"""
from __future__ import annotations

import contextlib
import functools
import os

import streamlit as st
from sqlalchemy.exc import DBAPIError

from prefine_core import jobs
from prefine_core.demo import DEMO_FINETUNE
from prefine_core.task_words import task_title
from prefine_core.entry import shown
from prefine_core.store.engine import outage_reason
from prefine_core.workspace import Workspace

DEFAULT_TASK = "SafetyHalfCheetahVelocity-v1"


@st.cache_resource(show_spinner="Opening the workspace…")
def _open(root: str, db_url: str) -> Workspace:
    ws = Workspace.open(root or None, db_url=db_url or None)
    jobs.reap(ws)  # once per app process: runs whose process died with an earlier app are marked failed
    return ws


def _leave_legacy_multipage_mode() -> None:
    """Streamlit runs an app that has a ``pages/`` folder in its legacy multipage mode until ``st.navigation``
    has run once in the process. A first visit straight to a page (a deep link, a tab reloading after an app
    restart) is then run without app.py — no sidebar, no outage notice — and keeps the whole server in that
    mode. Every page calls :func:`workspace` first, so here the mode is left and the run restarted through
    app.py. (Streamlit has no public switch for this; a browser test fails if the attribute stops working.)"""
    global _legacy_mode_left
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        if not _legacy_mode_left:  # once per process (Streamlit's AppTest sets the mode again before every run)
            _legacy_mode_left = True
            st.rerun()


_legacy_mode_left = False


def workspace() -> Workspace:
    """The workspace of ``$PREFINE_WORKSPACE`` / ``$PREFINE_DB_URL``, opened once per app process."""
    _leave_legacy_multipage_mode()
    return _open(os.environ.get("PREFINE_WORKSPACE", ""), os.environ.get("PREFINE_DB_URL", ""))


def task_ids(ws: Workspace) -> list[str]:
    """Tasks with at least one policy, the default first."""
    tasks = sorted({p.task_id for p in ws.store.list_policies()})
    return sorted(tasks, key=lambda t: t != DEFAULT_TASK) or [DEFAULT_TASK]


def task_id() -> str:
    """The task this session works on (chosen in the sidebar)."""
    return st.session_state.get("task_id") or DEFAULT_TASK


def _keep(widget_key: str, state_key: str) -> None:
    st.session_state[state_key] = st.session_state[widget_key]


def _to_url(name: str, value) -> None:
    """Mirror a choice into the page's address, so that a reload (a new session) finds it again; written only
    when it changed (each write is a message to the browser)."""
    if st.query_params.get(name) != str(value):
        st.query_params[name] = str(value)


def _from_url(name: str, options: list | None):
    """The option the page's address names under ``name``, if it is one of ``options`` (any text with None)."""
    wanted = st.query_params.get(name)
    if wanted is None or options is None:
        return wanted
    return next((option for option in options if str(option) == wanted), None)


def scoped(name: str, scope: str) -> str:
    """The key of the widget ``name`` for ``scope`` (the task): a choice among one task's policies or runs is another
    widget than the same choice among another task's, so a task switch never shows one task's choice in the other's."""
    return f"{name}.{scope}"


def kept_choice(widget_key: str, options: list | None = None, in_url: str | None = None):
    """What :func:`kept` will restore into the widget ``widget_key``: its state, else its kept copy, else the
    address's ``in_url`` — a value ``options`` no longer hold counts as gone — or None: the widget's default applies.
    For a default that must differ from another widget's choice drawn after it, and for :func:`kept` itself."""
    state, plain = st.session_state, f"kept_{widget_key}"
    fits = lambda value: options is None or value in options  # noqa: E731
    if widget_key in state or plain in state:
        value = state[widget_key] if widget_key in state else state[plain]
        if fits(value):
            return value
        if widget_key not in state:  # a kept copy alone that fits no more: the default, as on a first visit
            return None
    return _from_url(in_url, options) if in_url else None


def kept(widget_key: str, options: list | None = None, in_url: str | bool = False, **defaults) -> dict:
    """Widget arguments that make the value of the widget ``widget_key`` outlive switching pages: Streamlit drops
    the state of a widget that a page run did not draw, so the value is also kept under a plain session key and
    handed back before the widget is drawn again — unless ``options`` no longer hold it (a deleted policy), when
    ``defaults`` (e.g. ``index=``, ``value=``) apply as on a first visit. With ``in_url`` (a string names its
    parameter, default ``widget_key``) it is also kept in the page's address, so it outlives a reload too: a choice
    among ``options`` (an address naming none of them loses that parameter), or without ``options`` a text field's
    text as typed (the page checks it as it checks typing). Use as ``st.text_input("Name", **ui.kept("name"))``."""
    plain = f"kept_{widget_key}"
    url = (in_url if isinstance(in_url, str) else widget_key) if in_url else None
    if options is not None:
        forget_missing(widget_key, options)  # e.g. a policy deleted meanwhile: the default instead
    if url and url in st.query_params and _from_url(url, options) is None:
        del st.query_params[url]  # it names nothing here (a deleted run, another task's policy, a typo)
    if widget_key not in st.session_state and (value := kept_choice(widget_key, options, url)) is not None:
        st.session_state[widget_key] = st.session_state[plain] = value  # from the kept copy, or the address (a reload)
    given = widget_key in st.session_state  # a default beside a value set here would only draw a warning
    if url and given:  # chosen, restored or set from code; a change of page clears the address
        _to_url(url, st.session_state[widget_key])
    return {"key": widget_key, "on_change": _keep, "args": (widget_key, plain), **({} if given else defaults)}


def forget_missing(widget_key: str, options: list):
    """Forget the value of the widget ``widget_key`` (and its :func:`kept` copy) when ``options`` no longer hold it,
    so that the widget shows its default; returns that value, else None. A page calls it before drawing the widget,
    to say so and to act on no click made this run against what is gone (a policy deleted in another tab or from
    the CLI: a click on Evaluate or Launch then arrived with the default put in its place, unsaid)."""
    if widget_key in st.session_state and st.session_state[widget_key] not in options:
        st.session_state.pop(f"kept_{widget_key}", None)
        return st.session_state.pop(widget_key)
    return None


def set_kept(widget_key: str, value) -> None:
    """Set a :func:`kept` widget's value from code (e.g. select the run just launched), so that it is kept too."""
    st.session_state[widget_key] = st.session_state[f"kept_{widget_key}"] = value


def follow_newest(widget_key: str, newest) -> None:
    """A :func:`kept` choice among items newest first that shows the newest moves to a newer one when it appears (a
    run started from the CLI or another tab); a choice of an older item stays."""
    seen = f"newest_{widget_key}"
    if st.session_state.get(seen) not in (None, newest) and st.session_state.get(widget_key) == st.session_state[seen]:
        set_kept(widget_key, newest)
    st.session_state[seen] = newest


def sidebar(ws: Workspace) -> None:
    """Task and demo mode; kept under plain session keys so they outlive any page's widgets, and in the page's
    address (``?task=…&demo=1``) so they outlive a reload."""
    tasks = task_ids(ws)
    if "task_id" not in st.session_state and (named := _from_url("task", tasks)) is not None:
        st.session_state["task_id"] = named
    if "demo" not in st.session_state and st.query_params.get("demo") == "1":
        st.session_state["demo"] = True
    if st.session_state.get("task_id") not in tasks:
        st.session_state["task_id"] = tasks[0]
    st.sidebar.selectbox("Task", tasks, index=tasks.index(st.session_state["task_id"]), key="task_select",
                         format_func=task_title, on_change=_keep, args=("task_select", "task_id"),
                         help="Safety-Gymnasium task the pages work on; its id is under the box")
    st.sidebar.caption(f"`{st.session_state['task_id']}`")
    st.sidebar.toggle("Demo mode", value=bool(st.session_state.get("demo")), key="demo_toggle", on_change=_keep,
                      args=("demo_toggle", "demo"),
                      help="for showing PREFINE to non-experts: the Label page asks its question in the task's own "
                           "words (\"Which robot kept to the speed limit better?\"), and the Fine-tune form starts "
                           f"from the demo's settings ({DEMO_FINETUNE['steps']} steps, about a minute on two cores). Home's "
                           "guided path is there either way")
    st.sidebar.caption(f"Workspace: {ws.root}")
    _to_url("task", st.session_state["task_id"])
    if st.session_state.get("demo"):
        _to_url("demo", 1)
    elif "demo" in st.query_params:
        del st.query_params["demo"]


def cancel_job_button(ws: Workspace, run_id: int, key: str) -> None:
    """A button that cancels background run ``run_id`` (a video job, say, named on a page that has no run list)."""
    st.button(f"Cancel run {run_id}", key=key, on_click=jobs.cancel, args=(ws, run_id),
              help="stops it; what it finished stays (rendered videos, for one); it can be started again")


def render_missing_button(ws: Workspace, task_id: str, **button) -> None:
    """"Render the missing videos": starts the task's background render job (:func:`pair_videos.render_missing`)."""
    from prefine_core import pair_videos

    st.button("Render the missing videos", key="render_missing",
              on_click=lambda: guarded(pair_videos.render_missing, ws, task_id), **button)


def rerun_when(ready, every: float) -> None:
    """Check ``ready()`` every ``every`` seconds in a fragment, and draw the whole page again once it holds (a video
    rendered, a pair prepared, a run started elsewhere), or once what it watches is gone (a ValueError: a pair deleted
    meanwhile; the page drawn again shows what is there); a database outage meanwhile is said, not raised."""
    def check() -> None:
        try:
            done = ready()
        except ValueError:
            done = True
        if done:
            st.rerun()

    st.fragment(run_every=every)(survives_outage(check))()


def annotator() -> str:
    """This session's annotator name ('' until entered; kept across pages); never shared between sessions."""
    return (st.session_state.get("annotator") or st.session_state.get("kept_annotator") or "").strip()


@contextlib.contextmanager
def outage_notice():
    """A database that stays unreachable through the store's retries while a page or a fragment *reads*
    is said so in one message instead of a traceback (writes go through :func:`guarded`)."""
    try:
        yield
    except DBAPIError as exc:
        st.error(f"The database is unreachable ({outage_reason(exc)}). Nothing was lost; this page shows again "
                 "once the database is back (reload it if it does not).")


def survives_outage(fn):
    """``fn`` (e.g. a fragment that refreshes itself) run inside :func:`outage_notice`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with outage_notice():
            return fn(*args, **kwargs)
    return wrapper


def guarded(action, *args, success: str | None = None, keep: tuple[str, object] | None = None,
            under: str | None = None, **kwargs):
    """Run ``action``; show a ValueError/OSError as a message that says what to do instead of a traceback.

    A database that stays locked or unreachable through the store's retries is said so: the action
    was not saved, and the page keeps its state so the same action can be repeated. ``keep`` = (key, inputs)
    keeps a refusal for :func:`kept_refusal` to show again on the page's later runs (a run finishing elsewhere
    redraws the page, and the message would go while the input it names is still there); a success clears it.
    ``under``: run from a widget's callback, whose messages Streamlit draws at the top of the page (which also
    moved the page's tabs back to the first: a refused delete on Data › Policies showed the Pairs tab); the refusal
    is kept for :func:`said_under` to show under that widget instead.
    """
    def say(message: str) -> None:
        if under is None:
            st.error(message)
        else:
            st.session_state[f"{under}_refused"] = message

    try:
        value = action(*args, **kwargs)
    except (ValueError, OSError) as exc:
        say(str(exc))
        if keep is not None:
            st.session_state[keep[0]] = (str(exc), keep[1])
        return None
    except DBAPIError as exc:
        say(f"Not saved: the database is busy or unreachable ({outage_reason(exc)}). Nothing was lost; "
            "try the same action again in a moment.")
        return None
    if keep is not None:
        st.session_state.pop(keep[0], None)
    if success:
        st.toast(success)
    return value


def kept_refusal(key: str, inputs: object) -> None:
    """Show again the refusal :func:`guarded` kept under ``key``, while the inputs are those it refused."""
    kept = st.session_state.get(key)
    if kept is not None and kept[1] == inputs:
        st.error(kept[0])


def fill_form(fields: list[dict], values: dict, source: tuple, prefix: str = "cfg_") -> None:
    """Put ``values`` (a field's default where absent) into the form of :func:`number_widget` fields, before it is
    drawn: on a first visit (Streamlit dropped the fields' state on another page), and whenever ``source`` (what
    the values come from: a task's latest run, the defaults, Demo mode) changes. A keyed widget's identity is its
    key, so a new ``value=`` alone would not change what the browser shows; its session state does."""
    marker = f"{prefix}filled_from"
    if st.session_state.get(marker) == source and all(prefix + f["name"] in st.session_state for f in fields):
        return
    for field in fields:
        value = values.get(field["name"], field["default"])
        if field["choices"] and value not in field["choices"]:
            value = field["default"]
        st.session_state[prefix + field["name"]] = value if field["choices"] else shown(value)
    st.session_state[marker] = source


def form_widgets(fields: list[dict], columns: int = 4) -> dict:
    """A widget per field of :func:`prefine_core.launcher.form_fields` (keys ``cfg_<name>``, as :func:`fill_form`
    fills them), in rows of ``columns``; returns {name: value}."""
    cols = st.columns(columns)
    return {field["name"]: number_widget(cols[i % columns], field, key=f"cfg_{field['name']}")
            for i, field in enumerate(fields)}


def number_widget(container, field: dict, key: str):
    """A widget for one generated config field, its value put in by :func:`fill_form`: a select for choices, else a
    text field (its bounds said in its help) whose text :func:`prefine_core.launcher.form_config` parses: a browser's
    number field rounds, clamps or drops what it cannot hold (``1e30`` arrived as 1, an emptied field as the previous
    value) and the form would start a run with a value nobody typed; the parser and ``PrefineConfig`` refuse it
    instead, naming the field."""
    if field["choices"]:
        return container.selectbox(field["label"], field["choices"], help=field["help"], key=key)
    low, high = field["min"], field["max"]
    bounds = (f" ({low} to {high})" if low is not None and high is not None else
              f" (at least {low})" if low is not None else f" (at most {high})" if high is not None else "")
    return container.text_input(field["label"], help=field["help"] + bounds, key=key)


def number_or_dash(value: float | None) -> str:
    """A statistic to two decimals, or "—" where it is undefined (None)."""
    return "—" if value is None else f"{value:.2f}"


def plain(text: str) -> str:
    """User or data text made safe for markdown: shown literally, never as markup or HTML."""
    specials = "\\`*_{}[]()<>#+-.!|~$"
    return "".join("\\" + ch if ch in specials else ch for ch in str(text))


UNCONFIRMED = "Type DELETE in the box above to confirm; nothing was deleted."


def confirmed(box: str) -> bool:
    """In a delete button's callback: whether the confirmation text field ``box`` says DELETE; else
    :func:`said_under` ``box`` shows the refusal under the button. (The button itself
    stays enabled: held until the box was left, it let the first click, which leaves the box, fall on nothing.)"""
    if st.session_state.get(box) == "DELETE":
        return True
    st.session_state[f"{box}_refused"] = UNCONFIRMED
    return False


def said_under(box: str) -> None:
    """Under a button: why its last click (its callback) did nothing, if it did not: kept by :func:`confirmed` or
    by :func:`guarded` with ``under=box``."""
    if message := st.session_state.pop(f"{box}_refused", None):
        st.error(message)
