"""One figure per preference-optimisation theory claim (issue: coverage, IPO vs DPO, noisy
labels, ranking accuracy, identifiability, CPL consistency, ZO-RankSGD, XPO, APO).

Each figure reruns its checker's experiment (``theory.<module>.experiment``, quick or full
sizes) with the first seed, stores the long-form rows as CSV, and redraws from that CSV with
the checker's own ``draw`` — the PNG of ``prl figure po_…`` and of ``prl check …`` are the
same picture of the same numbers.
"""

from __future__ import annotations

import importlib
from typing import Any

import pandas as pd

from prl.figure import FigureContext, register_figure

FIGURES = {  # figure name: (theory module, paper)
    "po_coverage": ("coverage", "Song et al. 2024 (coverage, HyPO)"),
    "po_ipo_vs_dpo": ("ipo", "Azar et al. 2023 (IPO)"),
    "po_robust_dpo": ("robust_dpo", "Chowdhury et al. 2024 (rDPO)"),
    "po_ranking_accuracy": ("ranking", "Chen et al. 2024 (ranking accuracy)"),
    "po_identifiability": ("identifiability", "Knox et al. 2022 (regret vs partial return)"),
    "po_cpl_consistency": ("cpl_consistency", "Hejna et al. 2024 (CPL)"),
    "po_zo_rank_sgd": ("zo_rank", "Tang et al. 2024 (ZO-RankSGD)"),
    "po_xpo": ("xpo", "Xie et al. 2024 (XPO)"),
    "po_apo": ("apo", "He et al. 2024 (APO)"),
}


def _module(name: str) -> Any:
    return importlib.import_module(f"prl.theory.{name}")


def _make(fig_name: str, module: str, paper: str) -> type:
    class Figure:
        def data(self, ctx: FigureContext) -> pd.DataFrame:
            seed = ctx.seeds[0]

            def run() -> pd.DataFrame:
                out = _module(module).experiment(ctx.quick, ctx.device, seed)
                return pd.DataFrame(out["rows"])

            return ctx.cached(f"seed{seed}", run)

        def draw(self, df: pd.DataFrame, ctx: FigureContext) -> Any:
            return _module(module).draw(df)

    doc = " ".join((_module(module).__doc__ or "").strip().split("\n\n")[0].split())
    Figure.__name__ = Figure.__qualname__ = "".join(p.title() for p in fig_name.split("_"))
    Figure.__doc__ = doc
    register_figure(
        fig_name,
        seeds=(0,),
        quick_seeds=(0,),
        budget={"mode": "full"},
        quick_budget={"mode": "quick"},
        description=doc,
        paper=paper,
    )(Figure)
    return Figure


for _name, (_module_name, _paper) in FIGURES.items():
    globals()[_name] = _make(_name, _module_name, _paper)
