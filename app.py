"""PREFINE Studio: navigation, the workspace, and the sidebar. Pages live in pages/."""
import streamlit as st
from sqlalchemy.exc import DBAPIError

from prefine_core.components import hold_choice_buttons, ui

st.set_page_config(page_title="PREFINE Studio", page_icon="🛡️", layout="wide")
# First, before anything slow: Streamlit starts an app that has a pages/ folder in its legacy multipage mode
# and leaves it only when st.navigation runs; a click during a slow first run (opening the workspace) would
# otherwise keep the server in that mode, running pages without this file.
page = st.navigation([
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/label.py", title="Label", icon=":material/label:"),
    st.Page("pages/finetune.py", title="Fine-tune", icon=":material/monitoring:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("pages/data.py", title="Data", icon=":material/database:"),
])
hold_choice_buttons()  # the Label page's choice buttons take no click until its player shows their pair
try:
    ws = ui.workspace()
except (ValueError, OSError, DBAPIError) as exc:  # DBAPIError: a read-only folder, an unreachable database
    st.error(f"The workspace cannot be opened: {exc}. Set PREFINE_WORKSPACE to a writable folder "
             "(or PREFINE_DB_URL to a reachable database) and restart the app.")
    st.stop()
with ui.outage_notice():  # a page's reads while the database is down: a message, not a traceback
    ui.sidebar(ws)
    page.run()
