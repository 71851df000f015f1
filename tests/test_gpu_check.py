"""benchmarks/gpu_check.py (the script to run when a GPU is lent) works end to end on CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_a_smoke_run_and_reports_failures(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu"]
    cmd += ["--parts", "smoke", "--algos", "dpo", "--out", str(tmp_path)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "gpu_check.json").read_text())
    assert doc["env"]["device"] == "cpu"
    assert [r["algo"] for r in doc["smoke"]] == ["dpo"] and doc["smoke"][0]["rc"] == 0
    assert "1 of 1 ok" in (tmp_path / "gpu_check.md").read_text()
    # a part that cannot run is recorded, not fatal: an unknown algorithm fails its smoke part
    bad = [*cmd[:5], "smoke", "--algos", "nosuch", "--out", str(tmp_path / "b")]
    p = subprocess.run(bad, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0
    doc = json.loads((tmp_path / "b" / "gpu_check.json").read_text())
    assert "smoke_error" in doc and "nosuch" in doc["smoke_error"]


def test_gpu_check_rejects_an_unknown_part(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--parts", "gpu"]
    p = subprocess.run([*cmd, "--out", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 2 and "unknown part" in p.stderr
