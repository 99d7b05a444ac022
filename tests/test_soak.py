"""Soak (not in the default run or CI): the app labels through the synthetic teacher for a while;
every acknowledged label is stored, and memory and file handles stay flat.

    .venv/bin/python -m pytest -m soak tests/test_soak.py      # 3 minutes (PREFINE_SOAK_MINUTES to change)
    .venv/bin/python scripts/soak.py --minutes 30              # the recorded run (RELIABILITY.md)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.soak


def test_soak_labelling_keeps_every_label_and_flat_memory_and_handles(tmp_path):
    minutes = float(os.environ.get("PREFINE_SOAK_MINUTES", "3"))
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "soak.py"), "--minutes", str(minutes),
                             "--every", "10", "--no-write", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=minutes * 60 + 600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads((tmp_path / "soak_summary.json").read_text())
    assert summary["missing"] == [] and summary["stored"] == summary["labels"] > 0, summary
    assert summary["rss_growth_mb_after_warmup"] < 50, summary["table"]
    assert summary["fd_growth_after_warmup"] <= 5, summary["table"]
