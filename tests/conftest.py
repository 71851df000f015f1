"""Shared test fixtures: run the CLI in-process or as a subprocess, with the repo on the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("MPLBACKEND", "Agg")
# pytest-xdist runs one process per core: every run inside a test gets one thread (a run records
# its thread count, so in-process and subprocess runs of one test must agree on it)
os.environ.setdefault("PRL_THREADS", "1")


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child ``python -m prl.cli`` with this checkout importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


def run_prl(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``prl ARGS`` in a fresh interpreter; returns the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "prl.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=subprocess_env(**env),
        timeout=600,
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run ``long``-marked tests first, so that with ``-n auto`` they do not form a long tail."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture
def prl_cli():
    """The ``run_prl`` helper as a fixture."""
    return run_prl


GOLDEN = Path(__file__).parent / "data" / "golden"
GOLDEN_RTOL = 1e-2  # a CPU kind without stored files: float32 kernels move the last bits


def cpu_kind() -> tuple[str, str]:
    """(CPU vendor, torch's CPU capability): what decides the float32 kernels."""
    import torch

    from prl.store import machine

    return machine()["cpu_vendor"], torch.backends.cpu.get_cpu_capability()


def assert_golden(metrics: Path, name: str, kind: tuple[str, str] | None = None) -> None:
    """``metrics`` equals golden ``name`` byte for byte (tests/data/golden/README.md): any stored
    CPU kind's file, this CPU kind's file when stored, else every value within GOLDEN_RTOL.

    ``kind``: (vendor, capability) of the CPU, :func:`cpu_kind` when omitted."""
    import json

    import numpy as np
    import pandas as pd

    kinds = json.loads((GOLDEN / "kinds.json").read_text())
    stored = {k: (GOLDEN / k / f"{name}.metrics.csv").read_bytes() for k in kinds}
    got = metrics.read_bytes()
    if got in stored.values():
        return
    vendor, cap = kind or cpu_kind()
    mine = [k for k, v in kinds.items() if v["vendor"] == vendor and v["cpu_capability"] == cap]
    assert not mine, f"{name}: metrics.csv differs from the golden made on this CPU ({mine[0]})"
    ref_kind = next(iter(kinds))
    ref = pd.read_csv(GOLDEN / ref_kind / f"{name}.metrics.csv")
    new = pd.read_csv(metrics)
    assert list(new.columns) == list(ref.columns) and new.shape == ref.shape, name
    num = ref.select_dtypes("number").columns
    pd.testing.assert_frame_equal(new.drop(columns=num), ref.drop(columns=num))
    a, b = new[num].to_numpy(float), ref[num].to_numpy(float)
    close = np.isclose(a, b, rtol=GOLDEN_RTOL, atol=1e-6, equal_nan=True)
    assert close.all(), (
        f"{name}: on this CPU ({vendor}, {cap}; no stored golden of its kind) values differ from "
        f"{ref_kind}'s by more than {GOLDEN_RTOL:g} relative: {num[np.where(~close)[1]].tolist()}"
    )


@pytest.fixture
def golden():
    """The ``assert_golden`` check as a fixture."""
    return assert_golden
