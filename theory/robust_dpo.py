"""Robust DPO (Chowdhury, Kini, Natarajan 2024, "Provably robust DPO: aligning language models
with noisy feedback").

Log-linear policies π_θ(y|x) ∝ π_ref(y|x) exp(φ(x,y)ᵀθ) on 6 contexts × 3 responses with random
features (d = 4); labels come from the Bradley–Terry model of the implicit reward βφᵀθ* and each
is flipped with probability ε ∈ {0, 0.1, 0.2, 0.3}. For every n, G independent data sets are
drawn (as counts per pair, :func:`algos.dpo.bandit_pair_counts`-style) and fitted exactly
(:func:`algos.dpo.newton_fit`):

- rDPO's loss [(1−ε)ℓ(βh) − εℓ(−βh)]/(1−2ε) is unbiased for the clean loss, so its parameter
  error ‖θ̂ − θ*‖ falls like n^(−1/2) for every ε, and the error scales like 1/(1−2ε) (Theorem:
  O(√(d/n)/(1−2ε))): error·(1−2ε) is the same for every ε within a factor 1.5;
- plain DPO converges to the minimiser θ̃ of its population loss under the noisy labels
  σ(Δ̂) = ε + (1−2ε)σ(Δ): its error plateaus at ‖θ̃ − θ*‖ (measured at the largest n, within
  10%).

Negative control (``variant="no_correction"``): rDPO run with its correction switched off (ε
passed as 0 to the loss) is plain DPO — its error stops falling and the check must FAIL.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import torch

from prl.algos.dpo import PairData, newton_fit, rdpo_loss, sample_pair_counts
from prl.checks import CheckResult, register_check
from prl.errors import InvalidInputError
from prl.plot import fit_loglog_slope, new_figure
from prl.theory._po import generator, one_thread, result

EPS = (0.0, 0.1, 0.2, 0.3)
BETA = 1.0
X, K, D = 6, 3, 4  # contexts, responses per context, feature dimension
SLOPE_TOL = 0.1
SCALE_FACTOR = 1.5
PLATEAU_TOL = 0.10
THETA_NORM = 0.5  # ‖θ*‖: margins of order one, where the rDPO variance scales like (1−2ε)⁻²


VARIANTS = ("no_correction",)  # deliberately broken ingredients (negative controls)


def _problem(seed: int, device: Any) -> dict[str, torch.Tensor]:
    """Features, θ*, and the within-context candidate pairs (uniform over pairs)."""
    rng = np.random.default_rng([seed, 31337])
    phi = rng.normal(size=(X * K, D))
    theta = rng.normal(size=D)
    theta *= THETA_NORM / np.linalg.norm(theta)
    pairs = [(x * K + i, x * K + j) for x in range(X) for i in range(K) for j in range(i + 1, K)]
    dev = torch.device(device)
    f = torch.tensor([a for a, _ in pairs], device=dev)
    s = torch.tensor([b for _, b in pairs], device=dev)
    phi_t = torch.as_tensor(phi, device=dev)
    th = torch.as_tensor(theta, device=dev)
    margin = (phi_t[f] - phi_t[s]) @ th
    return {"phi": phi_t, "theta": th, "first": f, "second": s, "p": torch.sigmoid(BETA * margin)}


@one_thread
def experiment(quick: bool, device: Any, seed: int, variant: str | None = None) -> dict[str, Any]:
    """Parameter errors of rDPO and DPO vs n for each flip rate, and DPO's predicted plateau."""
    if variant not in (None, *VARIANTS):
        raise InvalidInputError(f"unknown variant {variant!r} (known: {VARIANTS})")
    pr = _problem(seed, device)
    G = 128 if quick else 2048
    ns = [4000, 16000, 64000, 256000] if quick else [4000, 16000, 64000, 256000, 1024000, 4096000]
    C = len(pr["first"])
    uniform = torch.full((G, C), 1.0 / C, dtype=torch.float64, device=pr["p"].device)
    gen = generator(seed, device, salt=41)
    rows = []
    plateau_err, slopes, scaled = {}, {}, {}
    for eps in EPS:
        q = eps + (1 - 2 * eps) * pr["p"]
        # plain DPO's population minimiser under the noisy labels: the predicted plateau
        pop = PairData(pr["first"][None], pr["second"][None], q[None], uniform[:1])
        tilde = newton_fit(pop, "dpo", BETA, features=pr["phi"])[0]
        bias = float((tilde - pr["theta"]).norm())
        corr = 0.0 if variant == "no_correction" else eps
        errs = {"rdpo": [], "dpo": []}
        for n in ns:
            data = sample_pair_counts(pr["first"], pr["second"], uniform, q, n, gen)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                fits = {
                    "rdpo": newton_fit(
                        data, functools.partial(rdpo_loss, eps=corr), BETA, features=pr["phi"]
                    ),
                    "dpo": newton_fit(data, "dpo", BETA, features=pr["phi"]),
                }
            for method, w in fits.items():
                e = (w - pr["theta"]).norm(dim=-1)
                e = e[torch.isfinite(e)]
                err = float(e.mean())
                errs[method].append(err)
                rows.append(
                    {
                        "method": method,
                        "eps": eps,
                        "n": n,
                        "error": err,
                        "error_x_1m2eps": err * (1 - 2 * eps),
                        "predicted_plateau": bias,
                        "datasets": int(e.numel()),
                    }
                )
        slopes[eps] = fit_loglog_slope(ns, errs["rdpo"])
        scaled[eps] = np.array(errs["rdpo"]) * (1 - 2 * eps)
        if eps > 0:
            plateau_err[eps] = abs(errs["dpo"][-1] / bias - 1.0)
    spread = np.stack(list(scaled.values()))  # [eps, n]
    ratio = float((spread.max(0) / spread.min(0)).max())
    return {
        "rows": rows,
        "slopes": slopes,
        "scale_ratio": ratio,
        "plateau_error": plateau_err,
        "worst_slope_error": max(abs(s + 0.5) for s in slopes.values()),
    }


def draw(df: Any) -> Any:
    """rDPO's and DPO's parameter error vs n for each flip rate (dashed: DPO's plateau)."""
    fig, axes = new_figure(ncols=2)
    for j, eps in enumerate(sorted(df["eps"].unique())):
        sub = df[df["eps"] == eps]
        r = sub[sub["method"] == "rdpo"].sort_values("n")
        d = sub[sub["method"] == "dpo"].sort_values("n")
        s = fit_loglog_slope(r["n"], r["error"])
        axes[0, 0].loglog(
            r["n"], r["error"], "o-", color=f"C{j}", label=f"rDPO ε={eps:g} ({s:.2f})"
        )
        axes[0, 0].loglog(d["n"], d["error"], "x:", color=f"C{j}")
        if eps > 0:
            axes[0, 0].axhline(d["predicted_plateau"].iloc[0], color=f"C{j}", ls="--", lw=1)
        axes[0, 1].loglog(r["n"], r["error_x_1m2eps"], "o-", color=f"C{j}", label=f"ε={eps:g}")
    axes[0, 0].set_xlabel("comparisons n")
    axes[0, 0].set_ylabel("mean ‖θ̂ − θ*‖ (o rDPO, x DPO; dashed: predicted plateau)")
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].set_xlabel("comparisons n")
    axes[0, 1].set_ylabel("rDPO error · (1 − 2ε)")
    axes[0, 1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def verdict(out: dict[str, Any]) -> CheckResult:
    """PASS iff rDPO's slopes are −½ ± 0.1, error·(1−2ε) agrees within ×1.5 and DPO's plateau
    matches the prediction within 10%."""
    parts = {
        "rDPO slope −½ ± 0.1": out["worst_slope_error"] <= SLOPE_TOL,
        "error·(1−2ε) within ×1.5": out["scale_ratio"] <= SCALE_FACTOR,
        "DPO plateau ±10%": max(out["plateau_error"].values()) <= PLATEAU_TOL,
    }
    failed = [k for k, ok in parts.items() if not ok]
    worst_eps = max(out["slopes"], key=lambda e: abs(out["slopes"][e] + 0.5))
    return result(
        measured=out["slopes"][worst_eps],
        claimed=-0.5,
        tolerance=SLOPE_TOL,
        passed=not failed,
        rows=out["rows"],
        draw=draw,
        comparison="≈",
        detail=(
            "rDPO error slopes "
            + ", ".join(f"ε={e:g}: {s:.3f}" for e, s in out["slopes"].items())
            + f"; max/min of error·(1−2ε) over ε {out['scale_ratio']:.2f} (≤ {SCALE_FACTOR}); "
            "DPO plateau vs prediction: "
            + ", ".join(f"ε={e:g}: {100 * v:.1f}%" for e, v in out["plateau_error"].items())
            + f" (≤ {100 * PLATEAU_TOL:.0f}%)"
            + (f"; FAILED: {', '.join(failed)}" if failed else "")
        ),
    )


@register_check(
    "robust_dpo_noise",
    paper="Chowdhury, Kini, Natarajan 2024, Provably robust DPO: aligning language models with "
    "noisy feedback",
    claim="With labels flipped at rate ε, rDPO's parameter error falls like n^(−1/2) (−0.5 ± 0.1) "
    "with error·(1−2ε) constant within ×1.5, while plain DPO plateaus at the bias predicted by "
    "σ(Δ̂) = ε + (1−2ε)σ(Δ) (± 10%).",
    tags=("preference-optimization",),
)
def check_robust_dpo(quick: bool, device: Any, seed: int) -> CheckResult:
    """Log-linear policies, ε ∈ {0, 0.1, 0.2, 0.3}, exact fits of G data sets per n."""
    return verdict(experiment(quick, device, seed))
