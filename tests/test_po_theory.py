"""Preference-optimisation theory checkers: each passes in quick mode, draws its figure from
its own CSV, and FAILS on a deliberately broken variant (so every checker can fail)."""

from __future__ import annotations

import importlib
import io

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from prl.checks import get_check
from prl.errors import InvalidInputError
from prl.registry import FIGURES, load_plugins
from prl.utils import torch_threads

CHECKS = {  # check name: (theory module, broken variants)
    "coverage_dpo_vs_rlhf": ("coverage", ("covered",)),
    "ipo_vs_dpo": ("ipo", ("wrong_target",)),
    "robust_dpo_noise": ("robust_dpo", ("no_correction",)),
    "dpo_ranking_accuracy": ("ranking", ("wrong_exponent", "flipped_c")),
    "regret_identifiability": ("identifiability", ("flipped_labels",)),
    "cpl_consistency": ("cpl_consistency", ("alpha_mismatch",)),
    "zo_rank_sgd_rate": ("zo_rank", ("value",)),
    "xpo_exploration": ("xpo", ("no_bonus",)),
    "apo_acceleration": ("apo", ("no_extrapolation",)),
}
CONTROLS = [(mod, v) for mod, vs in CHECKS.values() for v in vs]


@pytest.fixture(autouse=True)
def _one_thread_and_close():
    with torch_threads(1):
        yield
    plt.close("all")


@pytest.mark.parametrize("name", list(CHECKS))
def test_quick_check_passes_and_redraws_from_csv(name: str) -> None:
    check = get_check(name)
    assert check.paper and check.claim
    res = check.run(quick=True, device="cpu", seed=0)
    assert res.passed, f"{name}: {res.summary()} — {res.detail}"
    assert res.figure is not None and res.table
    buf = io.StringIO()
    pd.DataFrame(res.table).to_csv(buf, index=False)
    buf.seek(0)
    mod = importlib.import_module(f"prl.theory.{CHECKS[name][0]}")
    assert mod.draw(pd.read_csv(buf)) is not None  # the figure needs nothing but the CSV


@pytest.mark.parametrize(("module", "variant"), CONTROLS, ids=[f"{m}-{v}" for m, v in CONTROLS])
def test_negative_control_fails(module: str, variant: str) -> None:
    mod = importlib.import_module(f"prl.theory.{module}")
    assert variant in mod.VARIANTS
    res = mod.verdict(mod.experiment(True, "cpu", 0, variant=variant))
    assert not res.passed, f"{module} with {variant!r} should fail: {res.detail}"


def test_unknown_variant_is_rejected() -> None:
    mod = importlib.import_module("prl.theory.apo")
    with pytest.raises(InvalidInputError, match="variant"):
        mod.experiment(True, "cpu", 0, variant="nope")


def test_one_figure_per_claim_is_registered() -> None:
    load_plugins()
    from prl.figures.po_theory import FIGURES as PO

    assert {m for m, _ in PO.values()} == {m for m, _ in CHECKS.values()}
    for name in PO:
        spec = FIGURES.get(name)
        assert spec.quick_seeds == (0,) and spec.paper


def test_figure_runs_from_cache(tmp_path) -> None:
    from prl.figure import make_figure

    out = make_figure("po_apo", out=tmp_path, quick=True)
    assert out.ok and (tmp_path / "po_apo.png").exists()
    df = pd.read_csv(tmp_path / "po_apo.csv")
    assert set(df["panel"]) == {"curve", "ratio"}
