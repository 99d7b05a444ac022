"""Makes the repository root importable for pytest (prefine_core is used in place, not installed)."""
