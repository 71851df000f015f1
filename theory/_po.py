"""Shared plumbing of the preference-optimisation checkers (theory/coverage.py … theory/apo.py).

Each checker module has three parts: ``experiment(quick, device, seed, **variant)`` returns the
long-form rows (the CSV) and the numbers the claim is judged on, ``verdict(...)`` turns them
into a :class:`prl.checks.CheckResult`, and ``draw(df)`` draws the figure from the rows alone
— so the registered figure of :mod:`figures.po_theory` redraws it from the stored CSV. The
variant keywords switch on a deliberately broken ingredient (a wrong constant, a missing
correction, a sign flip) that the tests use as negative controls: the verdict must then FAIL.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from prl.checks import CheckResult
from prl.utils import torch_threads


def one_thread(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn(quick, device, seed, ...)`` with one torch thread in quick CPU mode (restored
    after): the tensors are small and extra threads only spin on shared cores."""

    @functools.wraps(fn)
    def run(quick: bool, device: Any, seed: int, *args: Any, **kw: Any) -> Any:
        if not quick or torch.device(device).type != "cpu":
            return fn(quick, device, seed, *args, **kw)
        with torch_threads(1):
            return fn(quick, device, seed, *args, **kw)

    return run


def generator(seed: int, device: Any, salt: int = 0) -> torch.Generator:
    """A torch generator on ``device`` seeded from (seed, salt)."""
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(int(seed) * 1_000_003 + int(salt))
    return g


def linear_slope(x: Any, y: Any) -> float:
    """Least-squares slope of y against x."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    return float(np.polyfit(x[keep], y[keep], 1)[0])


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a DataFrame (what the CSV holds)."""
    return pd.DataFrame(rows)


def result(
    *,
    measured: float,
    claimed: float,
    tolerance: float,
    passed: bool,
    rows: list[dict[str, Any]],
    draw: Callable[[pd.DataFrame], Any],
    comparison: str,
    detail: str,
    extra: dict[str, Any] | None = None,
) -> CheckResult:
    """A CheckResult whose figure is drawn from the same rows its CSV stores."""
    return CheckResult(
        measured=float(measured),
        claimed=float(claimed),
        tolerance=float(tolerance),
        passed=bool(passed),
        table=rows,
        figure=draw(frame(rows)),
        comparison=comparison,
        detail=detail,
        extra=dict(extra or {}),
    )
