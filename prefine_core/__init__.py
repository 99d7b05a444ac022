"""PREFINE Studio library: preference-based safety fine-tuning of RL policies (no streamlit here)."""
