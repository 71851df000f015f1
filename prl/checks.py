"""Theory checkers: a registered claim, its experiment, and measured-vs-claimed PASS/FAIL.

A checker is ``run(quick: bool, device, seed: int) -> CheckResult``, registered with
:func:`register_check` (name, paper, one-sentence claim). ``run_checks`` executes them, prints
``measured vs claimed`` lines, and stores each table (CSV), figure (PNG) and summary (JSON).
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prl.progress import heartbeat
from prl.registry import CHECKS, load_plugins
from prl.utils import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    check_out_dir,
    resolve_device,
)


@dataclass
class CheckResult:
    """Outcome of one checker: measured vs claimed within tolerance, plus its evidence.

    ``table`` is a list of row dicts (or a pandas DataFrame) written as CSV; ``figure`` a
    matplotlib Figure (or None); ``comparison`` states how measured relates to claimed
    (e.g. ``"<="`` for a bound, ``"≈"`` for an estimate).
    """

    measured: float
    claimed: float
    tolerance: float
    passed: bool
    table: Any = None
    figure: Any = None
    comparison: str = "≈"
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: verdict, measured vs claimed with tolerance, and what was measured."""
        verdict = "PASS" if self.passed else "FAIL"
        what = f"; measured = {' '.join(self.detail.split())}" if self.detail.strip() else ""
        return (
            f"{verdict}: measured {self.measured:.6g} {self.comparison} claimed "
            f"{self.claimed:.6g} (tolerance {self.tolerance:.3g}){what}"
        )


@dataclass(frozen=True)
class Check:
    """A registered claim: its name, the paper it comes from, the claim and the experiment."""

    name: str
    paper: str
    claim: str
    fn: Callable[[bool, Any, int], CheckResult]
    tags: tuple[str, ...] = ()

    def run(self, quick: bool = True, device: Any = "cpu", seed: int = 0) -> CheckResult:
        """Run the experiment on ``device`` (a name or torch.device)."""
        return self.fn(quick, resolve_device(device), seed)


def register_check(
    name: str, *, paper: str, claim: str, tags: tuple[str, ...] = ()
) -> Callable[[Callable[[bool, Any, int], CheckResult]], Callable[[bool, Any, int], CheckResult]]:
    """Decorator registering ``fn(quick, device, seed) -> CheckResult`` as check ``name``."""

    def deco(fn: Callable[[bool, Any, int], CheckResult]) -> Callable[..., CheckResult]:
        CHECKS.register(name, Check(name, paper, claim, fn, tuple(tags)), description=claim)
        return fn

    return deco


def get_check(name: str) -> Check:
    """The registered check ``name`` (UnknownNameError otherwise)."""
    return CHECKS.get(name)


@dataclass
class CheckOutcome:
    """A check's result with its wall-clock time and the files written for it."""

    check: Check
    result: CheckResult | None
    seconds: float
    files: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    axes: list[dict[str, Any]] = field(default_factory=list)  # the PNG's axes (figure lint)

    @property
    def passed(self) -> bool:
        return self.error is None and self.result is not None and bool(self.result.passed)

    def as_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "name": self.check.name,
            "paper": self.check.paper,
            "claim": self.check.claim,
            "passed": self.passed,
            "measured": None if r is None else float(r.measured),
            "claimed": None if r is None else float(r.claimed),
            "tolerance": None if r is None else float(r.tolerance),
            "comparison": None if r is None else r.comparison,
            "detail": None if r is None else r.detail,
            "seconds": round(self.seconds, 3),
            "files": self.files,
            "error": self.error,
            "axes": self.axes,
        }


def _write_table(table: Any, path: Path) -> None:
    import pandas as pd

    df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(list(table))
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _save_figure(fig: Any, path: Path) -> list[dict[str, Any]]:
    """Save the PNG; return its axes' labels and tick counts (for the figure lint)."""
    import matplotlib.pyplot as plt

    from prl.plot import axes_summary

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    axes = axes_summary(fig)
    plt.close(fig)
    return axes


def run_check(
    check: Check,
    *,
    quick: bool = True,
    device: Any = "cpu",
    seed: int = 0,
    out: Path | None = None,
    catch: bool = True,
) -> CheckOutcome:
    """Run one check, timing it and storing its table/figure/summary under ``out``."""
    t0 = time.perf_counter()
    files: dict[str, str] = {}
    try:
        res = check.run(quick=quick, device=device, seed=seed)
    except Exception as exc:
        if not catch:
            raise
        msg = f"{type(exc).__name__}: {exc}".splitlines()[0]
        tb = traceback.format_exc()
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / f"{check.name}.error.txt", tb)
            files["error"] = f"{check.name}.error.txt"
        return CheckOutcome(check, None, time.perf_counter() - t0, files, error=msg)
    secs = time.perf_counter() - t0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if res.table is not None:
            _write_table(res.table, out / f"{check.name}.csv")
            files["csv"] = f"{check.name}.csv"
        if res.figure is not None:
            axes = _save_figure(res.figure, out / f"{check.name}.png")
            files["png"] = f"{check.name}.png"
    outcome = CheckOutcome(check, res, secs, files)
    if out is not None and res.figure is not None:
        outcome.axes = axes
    if out is not None:
        atomic_write_json(out / f"{check.name}.json", outcome.as_dict())
        files["json"] = f"{check.name}.json"
    else:
        import matplotlib.pyplot as plt

        if res.figure is not None:
            plt.close(res.figure)
    return outcome


def run_checks(
    names: list[str] | None,
    *,
    quick: bool = True,
    device: Any = "cpu",
    seed: int = 0,
    out: Path | None = None,
    echo: Callable[[str], None] | None = print,
) -> list[CheckOutcome]:
    """Run the named checks (all when ``names`` is None), printing one line per check."""
    load_plugins()
    checks = [CHECKS.get(n) for n in names] if names else [CHECKS.get(n) for n in CHECKS.names()]
    resolve_device(device)  # fail early on an unavailable device
    if out is not None:
        check_out_dir(out)  # a file, a read-only mount, no permission: before any check runs
    outcomes = []
    for i, c in enumerate(checks, 1):
        with heartbeat(f"check {c.name} ({i}/{len(checks)})"):  # long checks say they run
            o = run_check(c, quick=quick, device=device, seed=seed, out=out)
        outcomes.append(o)
        if echo is not None:
            if o.error is not None:
                echo(f"ERROR {c.name}: {o.error} ({o.seconds:.1f}s)")
            else:
                assert o.result is not None
                echo(f"{c.name}: {o.result.summary()} ({o.seconds:.1f}s)")
    if out is not None:
        atomic_write_json(out / "checks.json", [o.as_dict() for o in outcomes])
    return outcomes


def outcomes_json(outcomes: list[CheckOutcome]) -> str:
    """The outcomes as a JSON document (``prl check --json``)."""
    return json.dumps([o.as_dict() for o in outcomes], indent=2)
