"""Data: browse trajectories, pairs and labels."""
import streamlit as st

from prefine_core.components import ui

ws, task = ui.workspace(), ui.task_id()
st.title("Data")
