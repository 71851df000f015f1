"""Pluralistic preferences, checked against exact answers (MaxMin-RLHF, GPM, VPL).

(a) ``maxmin_single_reward_gap`` (Chakraborty et al., MaxMin-RLHF, the impossibility result): on
exact two-group bandits (3 arms; group utilities u_0 = δ(1, 0, c), u_1 = δ(0, 1, c), minority share
w), the Bradley–Terry reward fitted to the population's mixture preferences (the exact
population MLE) gives the KL-regularised policy π ∝ exp(r̂/β), whose worst-group sub-optimality
gap stays above the exact max-min LP's by a margin ≥ ``MARGIN``·δ whenever the groups disagree;
the minority's gap grows with the disagreement δ and shrinks with its share w. The 10:1 sanity
check: BT's greedy arm is the majority's, the max-min arm is the compromise.
Negative control (``variant="agreeing"``): both groups rank the arms alike (u_1 = ½u_0), one
reward serves both, and the margin vanishes: the check must FAIL.

(b) ``gpm_rank_representation`` (Zhang et al., GPM): any skew-symmetric logit matrix S of rank 2r
is represented exactly by r blocks of R_≻ (its real Schur embedding): the relative reconstruction
error falls to numerical precision (≤ 1e-12) at k = r blocks and not below (≥ 1e-3 at k = r − 1);
the cyclic dice (rank 2) need one block, a 5-outcome rater mixture two.
Negative control (``variant="bt_scores"``): the best Bradley–Terry form s_i − s_j instead of the
blocks cannot represent cyclic structure and its error never falls: the check must FAIL.

(c) ``vpl_identifies_users`` (Poddar et al., VPL): a VPL encoder trained by the ELBO on a
two-group bandit (6 arms, opposite rankings) identifies a held-out user's group from the
posterior mean of z given n of the user's labelled pairs, with accuracy rising with n (non-
decreasing up to 0.03), ≥ 0.9 at n = 16, and within 0.1 of the exact Bayes classifier that
knows both groups' utilities.
Negative control (``variant="shuffled"``): the encoder is trained on another user's pairs, so z
carries nothing about the user: accuracy stays near ½ and the check must FAIL.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from prl.algos.dpo import fit_bt_reward, population_pairs
from prl.algos.pluralistic import (
    VPL,
    UserPairs,
    maxmin_lp,
    skew_embedding,
    skew_reconstruction,
    suboptimality_utilities,
)
from prl.checks import CheckResult, register_check
from prl.errors import InvalidInputError
from prl.games import cyclic_dice_matrix, rater_mixture_matrix
from prl.plot import new_figure
from prl.theory._po import one_thread, result

# ---- (a) a single BT reward cannot serve two disagreeing groups -------------------------------
COMPROMISE = 0.6  # the compromise arm's utility, as a fraction of each group's own best arm
BETA = 0.5  # KL temperature of the RLHF policy π ∝ exp(r̂/β) (uniform reference)
MARGIN = 0.05  # BT's worst-group gap exceeds the max-min optimum's by at least MARGIN·δ
VARIANTS_A = ("agreeing",)


def _utilities(delta: float, agreeing: bool) -> np.ndarray:
    u0 = delta * np.array([1.0, 0.0, COMPROMISE])
    u1 = 0.5 * u0 if agreeing else delta * np.array([0.0, 1.0, COMPROMISE])
    return np.stack([u0, u1])


def _mixture_game(U: np.ndarray, w: float) -> np.ndarray:
    return np.asarray(rater_mixture_matrix(U, [1.0 - w, w], beta=1.0))


@one_thread
def experiment_gap(
    quick: bool, device: Any, seed: int, variant: str | None = None
) -> dict[str, Any]:
    """Exact BT-vs-max-min gaps over a grid of minority shares w and disagreements δ."""
    if variant not in (None, *VARIANTS_A):
        raise InvalidInputError(f"unknown variant {variant!r} (known: {VARIANTS_A})")
    agreeing = variant == "agreeing"
    shares = np.linspace(0.05, 0.45, 5 if quick else 17)
    deltas = np.array([0.5, 1.0, 2.0, 4.0]) if quick else np.linspace(0.25, 4.0, 16)
    cases = [(w, d) for d in deltas for w in shares]
    Us = np.stack([_utilities(d, agreeing) for _, d in cases])
    P = torch.as_tensor(
        np.stack([_mixture_game(U, w) for (w, _), U in zip(cases, Us, strict=True)]),
        device=torch.device(device),
    )
    r_hat = fit_bt_reward(population_pairs(P)).cpu().numpy()  # exact population MLE, batched
    rows = []
    for (w, d), U, r in zip(cases, Us, r_hat, strict=True):
        z = r / BETA
        pi = np.exp(z - z.max())
        pi /= pi.sum()
        gaps_bt = U.max(1) - U @ pi
        p_mm, v_mm = maxmin_lp(suboptimality_utilities(U))
        rows.append(
            {
                "delta": float(d),
                "share": float(w),
                "bt_gap_majority": float(gaps_bt[0]),
                "bt_gap_minority": float(gaps_bt[1]),
                "bt_worst_gap": float(gaps_bt.max()),
                "maxmin_worst_gap": float(-v_mm),
                "margin_over_delta": float((gaps_bt.max() + v_mm) / d),
            }
        )
    # the 10:1 sanity check on 3 arms
    U = _utilities(1.0, agreeing)
    r = fit_bt_reward(population_pairs(_mixture_game(U, 1 / 11))).numpy()[0]
    p_mm, _ = maxmin_lp(suboptimality_utilities(U))
    sanity = {"bt_arm": int(np.argmax(r)), "maxmin_arm": int(np.argmax(p_mm))}
    return {"rows": rows, "sanity": sanity, "agreeing": agreeing}


def _monotone(values: np.ndarray, increasing: bool, tol: float = 1e-9) -> bool:
    d = np.diff(values)
    return bool(np.all(d >= -tol) if increasing else np.all(d <= tol))


def verdict_gap(out: dict[str, Any]) -> CheckResult:
    """PASS iff BT's worst group is worse than max-min's by ≥ MARGIN·δ everywhere, the minority gap
    rises with δ and falls with w, and the 10:1 bandit picks the majority / compromise arms."""
    import pandas as pd

    df = pd.DataFrame(out["rows"])
    margin = float(df["margin_over_delta"].min())
    grows = all(
        _monotone(g.sort_values("delta")["bt_gap_minority"].to_numpy(), True)
        for _, g in df.groupby("share")
    )
    shrinks = all(
        _monotone(g.sort_values("share")["bt_gap_minority"].to_numpy(), False)
        for _, g in df.groupby("delta")
    )
    sane = out["sanity"] == {"bt_arm": 0, "maxmin_arm": 2}
    parts = {
        f"BT worst gap ≥ max-min gap + {MARGIN}δ": margin >= MARGIN,
        "minority gap grows with δ": grows,
        "minority gap shrinks with its share": shrinks,
        "10:1 bandit: BT → majority arm, max-min → compromise": sane,
    }
    failed = [k for k, ok in parts.items() if not ok]
    return result(
        measured=margin,
        claimed=MARGIN,
        tolerance=0.0,
        passed=not failed,
        rows=out["rows"],
        draw=draw_gap,
        comparison=">=",
        detail=(
            f"min over {len(df)} exact bandits of (BT worst-group gap − max-min gap)/δ = "
            f"{margin:.4f}; minority gap rises with δ: {grows}, falls with share: {shrinks}; "
            f"10:1 bandit arms {out['sanity']}"
            + (f"; FAILED: {', '.join(failed)}" if failed else "")
        ),
    )


def draw_gap(df: Any) -> Any:
    """Minority and worst-group gaps of BT vs the max-min optimum, against the minority share."""
    fig, axes = new_figure(ncols=2)
    ax = axes[0, 0]
    for j, (d, g) in enumerate(df.groupby("delta")):
        g = g.sort_values("share")
        ax.plot(g["share"], g["bt_gap_minority"], "o-", color=f"C{j}", label=f"BT, δ = {d:g}")
        ax.plot(g["share"], g["maxmin_worst_gap"], ":", color=f"C{j}")
    ax.set_xlabel("minority share w")
    ax.set_ylabel("minority sub-optimality gap (dotted: max-min)")
    ax.legend(fontsize=6)
    ax = axes[0, 1]
    ax.scatter(df["maxmin_worst_gap"], df["bt_worst_gap"], s=10)
    lim = float(max(df["bt_worst_gap"].max(), df["maxmin_worst_gap"].max()))
    ax.plot([0, lim], [0, lim], "k--", lw=1)
    ax.set_xlabel("max-min policy: worst-group gap (exact LP)")
    ax.set_ylabel("single BT reward: worst-group gap")
    fig.tight_layout()
    return fig


@register_check(
    "maxmin_single_reward_gap",
    paper="Chakraborty et al. 2024, MaxMin-RLHF: Towards Equitable Alignment with Diverse Human "
    "Preferences",
    claim="On exact two-group bandits a single BT reward fitted to the mixture leaves the worse-off"
    " group ≥ 0.05δ further from its optimum than the max-min policy whenever the groups disagree; "
    "the minority's gap grows with the disagreement δ and shrinks with its share.",
    tags=("pluralistic",),
)
def check_gap(quick: bool, device: Any, seed: int) -> CheckResult:
    """Exact population BT fits vs the exact max-min LP on a grid of shares and disagreements."""
    return verdict_gap(experiment_gap(quick, device, seed))


# ---- (b) k blocks represent any rank-2k skew-symmetric game ------------------------------------
VARIANTS_B = ("bt_scores",)
EXACT_TOL, GAP_TOL = 1e-12, 1e-3


def _rel_err(S: np.ndarray, approx: np.ndarray) -> float:
    return float(np.linalg.norm(S - approx) / np.linalg.norm(S))


def _approx(S: np.ndarray, k: int, bt: bool) -> np.ndarray:
    if bt:  # best BT form s_i − s_j in Frobenius norm: s = row means of S
        s = S.mean(1)
        return s[:, None] - s[None, :]
    return skew_reconstruction(skew_embedding(S, k)[0])


@one_thread
def experiment_rank(
    quick: bool, device: Any, seed: int, variant: str | None = None
) -> dict[str, Any]:
    """Reconstruction error of k-block embeddings of random rank-2r skew matrices and two games."""
    if variant not in (None, *VARIANTS_B):
        raise InvalidInputError(f"unknown variant {variant!r} (known: {VARIANTS_B})")
    bt = variant == "bt_scores"
    rng = np.random.default_rng([seed, 2121])
    n = 10
    per = 5 if quick else 50
    rows = []
    for r in range(1, 5):
        for g in range(per):
            X = rng.standard_normal((n, 2 * r))
            J = np.kron(np.eye(r), np.array([[0.0, -1.0], [1.0, 0.0]]))
            S = X @ J @ X.T
            S = 0.5 * (S - S.T)
            for k in range(1, 6):
                rows.append(
                    {
                        "game": f"random rank {2 * r} #{g}",
                        "rank": 2 * r,
                        "k": k,
                        "rel_error": _rel_err(S, _approx(S, k, bt)),
                    }
                )
    from scipy.special import logit

    utilities = rng.standard_normal((3, 5))
    for name, P, rank in (
        ("cyclic dice", cyclic_dice_matrix(), 2),
        ("rater mixture (5 outcomes)", np.asarray(rater_mixture_matrix(utilities, beta=1.0)), 4),
    ):
        S = logit(P)
        S = 0.5 * (S - S.T)
        for k in range(1, 4):
            rows.append(
                {"game": name, "rank": rank, "k": k, "rel_error": _rel_err(S, _approx(S, k, bt))}
            )
    return {"rows": rows}


def verdict_rank(out: dict[str, Any]) -> CheckResult:
    """PASS iff the error is ≤ 1e-12 for every k ≥ rank/2 and ≥ 1e-3 at k = rank/2 − 1."""
    import pandas as pd

    df = pd.DataFrame(out["rows"])
    at = df[df["k"] >= df["rank"] // 2]["rel_error"].max()
    below = df[df["k"] == df["rank"] // 2 - 1]["rel_error"]
    below_min = float(below.min()) if len(below) else float("inf")
    ok = at <= EXACT_TOL and below_min >= GAP_TOL
    return result(
        measured=float(at),
        claimed=0.0,
        tolerance=EXACT_TOL,
        passed=bool(ok),
        rows=out["rows"],
        draw=draw_rank,
        comparison="≈",
        detail=(
            f"max relative error with k ≥ rank/2 blocks {at:.2e} (≤ {EXACT_TOL:g}); min with one "
            f"block too few {below_min:.2e} (≥ {GAP_TOL:g}) over {df['game'].nunique()} games"
        ),
    )


def draw_rank(df: Any) -> Any:
    """Relative reconstruction error against the number of blocks k, per rank."""
    fig, axes = new_figure()
    ax = axes[0, 0]
    rand = df[df["game"].str.startswith("random")]
    for j, (rank, g) in enumerate(rand.groupby("rank")):
        m = g.groupby("k")["rel_error"].max()
        ax.semilogy(
            m.index,
            np.maximum(m.to_numpy(), 1e-17),
            "o-",
            color=f"C{j}",
            label=f"random, rank {rank} (worst)",
        )
    for j, (name, g) in enumerate(df[~df["game"].str.startswith("random")].groupby("game")):
        ax.semilogy(g["k"], np.maximum(g["rel_error"], 1e-17), "s--", color=f"C{j + 5}", label=name)
    ax.axhline(EXACT_TOL, color="0.5", lw=1, ls=":")
    ax.set_xlabel("blocks k of R_≻ (embedding dimension 2k)")
    ax.set_ylabel("relative error ‖S − Ŝ_k‖ / ‖S‖")
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


@register_check(
    "gpm_rank_representation",
    paper="Zhang et al. 2024, General Preference Modeling with Preference Representations",
    claim="Any skew-symmetric preference-logit matrix of rank 2k is represented exactly by k "
    "blocks of R_≻: the reconstruction error is ≤ 1e-12 at k blocks and ≥ 1e-3 with k − 1.",
    tags=("pluralistic", "games"),
)
def check_rank(quick: bool, device: Any, seed: int) -> CheckResult:
    """Real-Schur block embeddings of random low-rank skew games, the dice and a rater mixture."""
    return verdict_rank(experiment_rank(quick, device, seed))


# ---- (c) VPL's posterior identifies the user's group --------------------------------------------
VARIANTS_C = ("shuffled",)
N_ARMS, PAIRS, CONTEXTS = 6, 16, (1, 2, 4, 8, 16)
LABEL_SCALE = 2.0


def _bandit_users(
    n_users: int, rng: np.random.Generator
) -> tuple[UserPairs, np.ndarray, np.ndarray, np.ndarray]:
    u0 = LABEL_SCALE * np.linspace(1.0, -1.0, N_ARMS)
    U = np.stack([u0, -u0])
    groups = rng.integers(0, 2, n_users)
    a = rng.integers(0, N_ARMS, (n_users, PAIRS))
    b = (a + rng.integers(1, N_ARMS, (n_users, PAIRS))) % N_ARMS
    from scipy.special import expit

    p = expit(U[groups][np.arange(n_users)[:, None], a] - U[groups][np.arange(n_users)[:, None], b])
    y = (rng.random(p.shape) < p).astype(np.float64)
    eye = np.eye(N_ARMS, dtype=np.float32)
    data = UserPairs(
        torch.as_tensor(eye[a][:, :, None, :]),
        torch.as_tensor(eye[b][:, :, None, :]),
        torch.as_tensor(y, dtype=torch.float32),
        torch.as_tensor(groups),
    )
    return data, U, a, b


def _bayes_accuracy(U: np.ndarray, data: UserPairs, a: np.ndarray, b: np.ndarray, n: int) -> float:
    from scipy.special import log_expit

    y = data.label.numpy()[:, :n].astype(np.float64)
    ll = []
    for k in range(2):
        h = U[k][a[:, :n]] - U[k][b[:, :n]]
        ll.append((y * log_expit(h) + (1 - y) * log_expit(-h)).sum(1))
    guess = (ll[1] > ll[0]).astype(int)
    return float(np.mean(guess == data.group.numpy()))


@one_thread
def experiment_vpl(
    quick: bool, device: Any, seed: int, variant: str | None = None
) -> dict[str, Any]:
    """Train VPL on a two-group bandit; group accuracy of held-out users from n context pairs."""
    if variant not in (None, *VARIANTS_C):
        raise InvalidInputError(f"unknown variant {variant!r} (known: {VARIANTS_C})")
    rng = np.random.default_rng([seed, 31])
    train, _, _, _ = _bandit_users(300 if quick else 2000, rng)
    test, U, a, b = _bandit_users(400 if quick else 2000, rng)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = VPL(N_ARMS, latent_dim=2, hidden=32, one_hot=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    steps = 200 if quick else 1500
    for _ in range(steps):
        idx = torch.randint(0, train.users, (64,), generator=gen)
        batch = train.index(idx)
        n_ctx = int(torch.randint(1, PAIRS + 1, (1,), generator=gen))
        ctx = torch.zeros(64, PAIRS)
        ctx[:, :n_ctx] = 1.0
        if variant == "shuffled":  # the encoder sees another user's pairs
            other = train.index(torch.randint(0, train.users, (64,), generator=gen))
            mu, logvar = model.encode(other.xa, other.xb, other.label, ctx)
        else:
            mu, logvar = model.encode(batch.xa, batch.xb, batch.label, ctx)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
        from prl.algos.pluralistic import vpl_loss

        loss, _, _ = vpl_loss(
            model.returns(batch.xa, z), model.returns(batch.xb, z), batch.label, mu, logvar, 0.05
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    rows = []
    with torch.no_grad():
        full, _ = model.encode(train.xa, train.xb, train.label)
        g = train.group
        cent = torch.stack([full[g == k].mean(0) for k in range(2)])
        for n in CONTEXTS:
            ctx = torch.zeros(test.users, PAIRS)
            ctx[:, :n] = 1.0
            mu, _ = model.encode(test.xa, test.xb, test.label, ctx)
            guess = torch.cdist(mu, cent).argmin(1)
            rows.append(
                {
                    "pairs": n,
                    "vpl_accuracy": float((guess == test.group).double().mean()),
                    "bayes_accuracy": _bayes_accuracy(U, test, a, b, n),
                }
            )
    return {"rows": rows}


def verdict_vpl(out: dict[str, Any]) -> CheckResult:
    """PASS iff accuracy is non-decreasing in n (± 0.03), ≥ 0.9 at n = 16, ≤ 0.1 below Bayes."""
    acc = np.array([r["vpl_accuracy"] for r in out["rows"]])
    bayes = np.array([r["bayes_accuracy"] for r in out["rows"]])
    rising = bool(np.all(np.diff(acc) >= -0.03)) and acc[-1] > acc[0]
    shortfall = float((bayes - acc).max())
    parts = {
        "accuracy rises with n": rising,
        "accuracy ≥ 0.9 at n = 16": acc[-1] >= 0.9,
        "within 0.1 of Bayes": shortfall <= 0.1,
    }
    failed = [k for k, ok in parts.items() if not ok]
    return result(
        measured=float(acc[-1]),
        claimed=0.9,
        tolerance=0.0,
        passed=not failed,
        rows=out["rows"],
        draw=draw_vpl,
        comparison=">=",
        detail=(
            "VPL accuracy by n pairs "
            + ", ".join(f"{r['pairs']}: {r['vpl_accuracy']:.3f}" for r in out["rows"])
            + f"; largest shortfall vs Bayes {shortfall:.3f}"
            + (f"; FAILED: {', '.join(failed)}" if failed else "")
        ),
    )


def draw_vpl(df: Any) -> Any:
    """Group-identification accuracy of VPL's posterior and of the Bayes classifier vs n."""
    fig, axes = new_figure()
    ax = axes[0, 0]
    ax.semilogx(df["pairs"], df["vpl_accuracy"], "o-", base=2, label="VPL posterior mean")
    ax.semilogx(df["pairs"], df["bayes_accuracy"], "k--", base=2, label="Bayes (true utilities)")
    ax.axhline(0.5, color="0.6", lw=1, ls=":")
    ax.set_xlabel("labelled pairs n of the held-out user")
    ax.set_ylabel("group identified correctly")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


@register_check(
    "vpl_identifies_users",
    paper="Poddar et al. 2024, Personalizing Reinforcement Learning from Human Feedback with "
    "Variational Preference Learning",
    claim="VPL's posterior over z identifies a held-out user's group from n labelled pairs with an "
    "accuracy rising in n, ≥ 0.9 at n = 16 and within 0.1 of the exact Bayes classifier.",
    tags=("pluralistic",),
)
def check_vpl(quick: bool, device: Any, seed: int) -> CheckResult:
    """A small VPL trained on a two-group bandit; accuracy of its posterior by context size."""
    return verdict_vpl(experiment_vpl(quick, device, seed))


#: check name → (experiment, verdict, draw, negative-control variants)
CHECKS = {
    "maxmin_single_reward_gap": (experiment_gap, verdict_gap, draw_gap, VARIANTS_A),
    "gpm_rank_representation": (experiment_rank, verdict_rank, draw_rank, VARIANTS_B),
    "vpl_identifies_users": (experiment_vpl, verdict_vpl, draw_vpl, VARIANTS_C),
}
VARIANTS = VARIANTS_A + VARIANTS_B + VARIANTS_C
