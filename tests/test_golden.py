"""Numbers that must not change: tiny runs against metrics stored before the issue-17 refactor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
def test_tiny_run_reproduces_the_stored_metrics_bit_for_bit(
    name: str, tmp_path: Path, golden
) -> None:
    cmd = [sys.executable, "-m", "prl.cli", "run", *RUNS[name], "--threads", "1"]
    res = subprocess.run([*cmd, "--out", str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    (metrics,) = tmp_path.glob("*/metrics.csv")
    golden(metrics, name)


def _edited(src: Path, dst: Path, scale: float) -> Path:
    """``src`` with its first row's first non-step numeric value multiplied by ``scale``."""
    import pandas as pd

    df = pd.read_csv(src)
    col = next(c for c in df.select_dtypes("number").columns if c != "step" and df[c].iloc[0])
    df.loc[0, col] = df.loc[0, col] * scale
    df.to_csv(dst, index=False)
    return dst


def test_golden_check_is_strict_on_a_stored_cpu_kind_and_tolerant_elsewhere(tmp_path: Path) -> None:
    """Bytes of any stored kind pass; a last-bits change fails on a CPU kind with stored files and
    passes on an unknown one; a 5% change fails everywhere."""
    from conftest import GOLDEN, assert_golden

    intel, other = ("GenuineIntel", "AVX512"), ("SomeVendor", "AVX2")
    for kind in ("amd-epyc", "intel-avx512"):
        assert_golden(GOLDEN / kind / "mdpo.metrics.csv", "mdpo", kind=other)
    tiny = _edited(GOLDEN / "intel-avx512" / "mdpo.metrics.csv", tmp_path / "tiny.csv", 1 + 1e-6)
    with pytest.raises(AssertionError, match="made on this CPU"):
        assert_golden(tiny, "mdpo", kind=intel)
    assert_golden(tiny, "mdpo", kind=other)
    big = _edited(GOLDEN / "intel-avx512" / "mdpo.metrics.csv", tmp_path / "big.csv", 1.05)
    for kind in (intel, other):
        with pytest.raises(AssertionError):
            assert_golden(big, "mdpo", kind=kind)
