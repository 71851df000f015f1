"""Numbers that must not change: tiny runs against metrics stored before the issue-17 refactor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "data" / "golden"
RUNS = {
    "nash": ["nash_md", "--env", "dueling", "--steps", "50"],
    "pdppo": ["pdppo", "--env", "lotsizing", "--steps", "600"],
    "mdpo": ["mdpo_on", "--env", "Hopper-v5", "--steps", "512"],
    "spo": ["spo", "--env", "PendulumFactored-v1", "--steps", "1000"],
    "rlhf": ["rlhf", "--env", "PendulumFactored-v1", "--steps", "1000"],
    "cmorl": ["cmorl", "--env", "deep_sea_treasure", "--steps", "1000"],
}


@pytest.mark.long
@pytest.mark.parametrize("name", sorted(RUNS))
def test_tiny_run_reproduces_the_stored_metrics_bit_for_bit(name: str, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "prl.cli", "run", *RUNS[name], "--threads", "1"]
    res = subprocess.run([*cmd, "--out", str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    (metrics,) = tmp_path.glob("*/metrics.csv")
    assert metrics.read_bytes() == (GOLDEN / f"{name}.metrics.csv").read_bytes()
