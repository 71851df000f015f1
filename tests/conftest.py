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
