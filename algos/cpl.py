"""CPL — Contrastive Preference Learning (Hejna et al., ICLR 2024): optimal policies from regret
preferences without RL.

Under maximum-entropy RL the optimal advantage is A*(s,a) = α log π*(a|s), so the regret
preference model P(σ⁺ ≻ σ⁻) = σ(Σ_t γ^t A*(σ⁺) − Σ_t γ^t A*(σ⁻)) becomes a model of the policy
itself. CPL fits π by maximum likelihood with a conservative bias λ ∈ (0, 1]::

    S(σ) = Σ_t γ^t α log π(a_t|s_t)            (CPL-KL: α (log π − log π_ref))
    L = −log [exp S(σ⁺) / (exp S(σ⁺) + exp λS(σ⁻))] = −log σ(S(σ⁺) − λ S(σ⁻))

(λ = 1 is the plain, convex but not strictly convex loss; λ < 1 or a BC term favours
in-distribution actions). Checked against the authors' code (github.com/jhejna/cpl,
``biased_bce_with_logits`` / ``biased_bce_with_scores``: same logits S⁺ − λS⁻, undiscounted sums).

One update rule, one place: :func:`segment_score`, :func:`cpl_loss` and :func:`cpl_dense_loss`
are used by the exact tabular solver :func:`cpl_tabular` (float64, full batch — the population
form the tests and the notebook check) and by the neural learner ``cpl`` (variants ``cpl``,
``cpl_bc``, ``cpl_kl``; sparse pairs or dense ranking; optional BC pretraining).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional as F

from prl.algos.offline_baselines import (
    SUPPORTED_ENVS,
    OfflineConfig,
    OfflineLearner,
    OfflinePolicy,
    smoke_offline,
)
from prl.common.losses import bt_nll, masked_mean
from prl.config import option, require
from prl.errors import InvalidInputError
from prl.run import register_algo
from prl.types import Preferences

__all__ = [
    "CPL",
    "CPLConfig",
    "cpl_dense_loss",
    "cpl_loss",
    "cpl_tabular",
    "discounted_counts",
    "segment_score",
]

# phases as fractions of the run when bc_steps / warmup_steps are None (the paper: 200k BC and 10k
# warm-up steps of 500k), so a short run still pretrains, warms up and trains CPL
BC_FRACTION = 0.4
WARMUP_FRACTION = 0.02
VARIANT_DEFAULTS = {  # (alpha, lam, bc_coeff): the authors' MetaWorld-state configs
    "cpl": (0.1, 0.5, 0.0),
    "cpl_bc": (0.1, 1.0, 1.0),
    "cpl_kl": (0.2, 0.75, 0.0),
}
# learning-rate multiplier after BC pretraining (the authors' configs: CPL-KL re-creates Adam at
# 0.1 × lr, so 1e-5 with the 1e-4 default; plain CPL and CPL-BC keep 1.0)
LR_MULTIPLIER_DEFAULTS = {"cpl": 1.0, "cpl_bc": 1.0, "cpl_kl": 0.1}


# ---- the loss (shared by every form of CPL) ------------------------------------------------------
def segment_score(
    log_probs: torch.Tensor,
    alpha: float,
    discount: float = 1.0,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """S(σ) = Σ_t γ^t α log π(a_t|s_t) over the last (time) axis; ``valid`` masks padding."""
    T = log_probs.shape[-1]
    w = torch.pow(
        torch.as_tensor(float(discount), dtype=log_probs.dtype, device=log_probs.device),
        torch.arange(T, dtype=log_probs.dtype, device=log_probs.device),
    )
    if valid is not None:
        log_probs = log_probs * valid.to(log_probs.dtype)
    return float(alpha) * (log_probs * w).sum(-1)


def cpl_loss(
    score_a: torch.Tensor,
    score_b: torch.Tensor,
    label: torch.Tensor,
    lam: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over valid pairs of −[y log σ(S_a − λS_b) + (1 − y) log σ(S_b − λS_a)] (soft y =
    P(a ≻ b)); the conservative CPL loss of Hejna et al., Eq. 5, computed with logsigmoid."""
    y = torch.as_tensor(label, dtype=score_a.dtype, device=score_a.device)
    per = bt_nll(score_a - lam * score_b, y, score_b - lam * score_a)
    return masked_mean(per, mask)


def cpl_dense_loss(
    scores: torch.Tensor, oracle_scores: torch.Tensor, lam: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense CPL: every pair (i, j) of the batch with oracle_scores[i] > oracle_scores[j] gives
    −log σ(S_i − λ S_j); ties are left out. Returns (mean loss, ranking accuracy)."""
    better = oracle_scores.unsqueeze(1) > oracle_scores.unsqueeze(0)  # [i, j]: i ≻ j
    logits = scores.unsqueeze(1) - lam * scores.unsqueeze(0)
    m = better.to(scores.dtype)
    n = torch.clamp(m.sum(), min=1.0)
    loss = -(F.logsigmoid(logits) * m).sum() / n
    with torch.no_grad():
        acc = ((scores.unsqueeze(1) > scores.unsqueeze(0)).to(scores.dtype) * m).sum() / n
    return loss, acc


# ---- exact tabular form --------------------------------------------------------------------------
def discounted_counts(
    obs: np.ndarray,
    actions: np.ndarray,
    n_states: int,
    n_actions: int,
    discount: float = 1.0,
    valid: np.ndarray | None = None,
    device: Any = "cpu",
) -> torch.Tensor:
    """Sparse ``[B, S·A]`` matrix of Σ_t γ^t 1[s_t = s, a_t = a] per segment (float64).

    On a tabular policy S(σ) = α ⟨counts(σ), log π⟩, so the CPL loss sees the data only
    through these discounted visit counts.
    """
    o = np.asarray(obs)
    a = np.asarray(actions)
    if o.ndim != 2 or a.shape != o.shape or not np.issubdtype(o.dtype, np.integer):
        raise InvalidInputError(f"need integer states and actions [B, T], got {o.shape}, {a.shape}")
    if o.size and (o.min() < 0 or o.max() >= n_states or a.min() < 0 or a.max() >= n_actions):
        raise InvalidInputError(
            f"states must be in [0, {n_states - 1}] and actions in [0, {n_actions - 1}]"
        )
    B, T = o.shape
    w = np.broadcast_to(np.power(float(discount), np.arange(T, dtype=np.float64)), (B, T))
    if valid is not None:
        w = w * np.asarray(valid, dtype=np.float64)
    rows = np.repeat(np.arange(B), T)
    cols = (o * n_actions + a).reshape(-1)
    idx = torch.as_tensor(np.stack([rows, cols]), device=device)
    vals = torch.as_tensor(w.reshape(-1).copy(), dtype=torch.float64, device=device)
    shape = (B, n_states * n_actions)
    return torch.sparse_coo_tensor(idx, vals, shape, check_invariants=False).coalesce()


def cpl_tabular(
    data: Preferences | Any,
    n_states: int,
    n_actions: int,
    *,
    alpha: float = 0.1,
    lam: float = 0.5,
    discount: float = 1.0,
    bc_weight: float = 0.0,
    ref_log_pi: np.ndarray | None = None,
    init_logits: np.ndarray | None = None,
    steps: int = 200,
    optimizer: Literal["lbfgs", "adam"] = "lbfgs",
    lr: float = 0.05,
    device: Any = "cpu",
) -> np.ndarray:
    """Minimize the CPL loss over a tabular policy (logits θ[S, A], π = softmax θ) on all the
    labelled pairs (full batch, float64); returns log π [S, A].

    ``data``: :class:`~prl.types.Preferences` or a sparse :class:`~prl.data.PreferenceDataset`
    of integer-state segments (steps with ``infos["valid"]`` False are ignored). On a tabular
    policy S(σ) = α⟨counts(σ), log π⟩, so the loss is evaluated from the discounted visit counts.
    ``ref_log_pi`` gives CPL-KL (α(log π − log π_ref)); ``bc_weight`` adds −mean log π over the
    data's steps. ``optimizer``: L-BFGS (strong Wolfe, ``steps`` iterations) or Adam.
    """
    dev = torch.device(device)
    dt = torch.float64
    if isinstance(data, Preferences):
        segs, P = [data.a, data.b], len(data)
        ia = torch.arange(P, device=dev)
        ib = torch.arange(P, 2 * P, device=dev)
        label, mask = data.label, data.mask
    elif hasattr(data, "pairs") and hasattr(data, "segments"):
        segs = [data.segments]
        ia = torch.as_tensor(data.pairs[:, 0], device=dev)
        ib = torch.as_tensor(data.pairs[:, 1], device=dev)
        label, mask = data.label, data.mask
    else:
        raise InvalidInputError(
            f"data must be Preferences or a PreferenceDataset, got {type(data).__name__}"
        )
    parts = [
        discounted_counts(
            x.obs, x.actions, n_states, n_actions, discount, x.infos.get("valid"), dev
        )
        for x in segs
    ]
    C = torch.cat(parts) if len(parts) > 1 else parts[0]  # [N, S·A] sparse
    bc = None
    if bc_weight > 0:  # visit frequencies of the data's valid steps (both sides of every pair)
        vis = [
            discounted_counts(x.obs, x.actions, n_states, n_actions, 1.0, x.infos.get("valid"), dev)
            for x in segs
        ]
        V = torch.cat(vis) if len(vis) > 1 else vis[0]
        bc = torch.sparse.sum(V.index_select(0, torch.cat([ia, ib])), dim=0).to_dense()
        bc = bc / torch.clamp(bc.sum(), min=1.0)
    y = torch.as_tensor(label, dtype=dt, device=dev)
    m = torch.as_tensor(mask, device=dev)
    theta0 = np.zeros((n_states, n_actions)) if init_logits is None else init_logits
    theta = torch.tensor(np.asarray(theta0, dtype=np.float64), device=dev, requires_grad=True)
    ref = None if ref_log_pi is None else torch.as_tensor(ref_log_pi, dtype=dt, device=dev)

    def objective() -> torch.Tensor:
        logp = torch.log_softmax(theta, -1)
        adv = (logp if ref is None else logp - ref).reshape(-1, 1)
        s = float(alpha) * torch.sparse.mm(C, adv)[:, 0]  # S(σ) of every segment
        loss = cpl_loss(s[ia], s[ib], y, lam, m)
        if bc is not None:
            loss = loss - bc_weight * (bc * logp.reshape(-1)).sum()
        return loss

    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(
            [theta],
            lr=1.0,
            max_iter=int(steps),
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-10,
            tolerance_change=1e-14,
            history_size=50,
        )

        def closure() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            loss = objective()
            loss.backward()
            return loss

        opt.step(closure)
    elif optimizer == "adam":
        opt = torch.optim.Adam([theta], lr=lr)
        for _ in range(int(steps)):
            loss = objective()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        raise InvalidInputError(f"optimizer must be 'lbfgs' or 'adam', got {optimizer!r}")
    return torch.log_softmax(theta.detach(), -1).cpu().numpy()


# ---- the neural learner --------------------------------------------------------------------------
@dataclass
class CPLConfig(OfflineConfig):
    """CPL / CPL-BC / CPL-KL on a preference dataset (defaults: the authors' MetaWorld-state
    configs — α 0.1, λ 0.5, Adam 1e-4, 96 pairs of 64-step segments, [512, 512], dropout 0.25,
    200k of 500k steps of BC pretraining; CPL-KL: α 0.2, λ 0.75 and the CPL phase at 0.1 × lr;
    dense data: every batch ranks random pairs of segments, the authors' "rank" mode)."""

    variant: Literal["cpl", "cpl_bc", "cpl_kl"] = option(
        "cpl",
        "cpl (conservative λ) | cpl_bc (λ = 1 plus a BC term) | cpl_kl (α(log π − log π_ref))",
    )
    alpha: float | None = option(None, "temperature α of S = Σ α log π (default by variant)")
    lam: float | None = option(None, "conservative bias λ in (0, 1] (default by variant)")
    bc_coeff: float | None = option(None, "weight of the BC term during CPL (default by variant)")
    bc_data: Literal["all", "pos"] = option("all", "BC term on all batch segments or preferred")
    bc_steps: int | None = option(
        None,
        "BC pretraining steps (CPL-KL's reference = the BC policy); None: 40% of the run "
        "(the paper's 200k of 500k)",
    )
    dense_pairs: Literal["all", "random"] = option(
        "random",
        "dense data: random pairs labelled by score (the authors' 'rank' batches) or all pairs "
        "of a batch",
    )
    warmup_steps: int | None = option(
        None, "linear learning-rate warm-up after BC; None: 2% of the run (the paper's 10k of 500k)"
    )
    lr_multiplier: float | None = option(
        None, "lr multiplier after BC pretraining (default by variant: cpl_kl 0.1, others 1.0)"
    )

    def validate(self) -> None:
        super().validate()
        a, lam, bc = self.resolved()
        require(a > 0, f"alpha must be positive, got {a}")
        require(0 < lam <= 1, f"lam must be in (0, 1], got {lam}")
        require(bc >= 0, f"bc_coeff must be >= 0, got {bc}")
        bc_steps, warmup = self.bc_steps or 0, self.warmup_steps or 0
        require(bc_steps >= 0 and warmup >= 0, "bc_steps, warmup_steps >= 0")
        require(self.cpl_lr_multiplier() > 0, "lr_multiplier must be positive")
        require(
            self.variant != "cpl_kl" or self.bc_steps is None or self.bc_steps > 0,
            "cpl_kl needs bc_steps > 0: its reference policy is the BC-pretrained one",
        )

    def cpl_lr_multiplier(self) -> float:
        """The learning-rate multiplier of the CPL phase (the variant's default unless set)."""
        if self.lr_multiplier is None:
            return LR_MULTIPLIER_DEFAULTS[self.variant]
        return float(self.lr_multiplier)

    def resolved(self) -> tuple[float, float, float]:
        """(α, λ, BC weight) with the variant's defaults filled in."""
        a0, l0, b0 = VARIANT_DEFAULTS[self.variant]
        return (
            a0 if self.alpha is None else float(self.alpha),
            l0 if self.lam is None else float(self.lam),
            b0 if self.bc_coeff is None else float(self.bc_coeff),
        )


@register_algo(
    "cpl",
    description="CPL: policy from regret preferences by a contrastive loss (variants bc, kl)",
    envs=SUPPORTED_ENVS,
)
class CPL(OfflineLearner):
    """Contrastive Preference Learning; one gradient step per ``step()``.

    BC pretraining for ``bc_steps`` (default: 40% of the run; on 2·batch segments), then the
    optimizer is reset (and CPL-KL freezes the reference policy) and the CPL loss is minimized
    on sparse labelled pairs or dense score-ranked batches.
    """

    Config = CPLConfig
    smoke = smoke_offline({"bc_steps": 0, "warmup_steps": 5}, family="cpl")
    cli_default_steps = 600

    def _build(self) -> None:
        self.alpha, self.lam, self.bc_coeff = self.config.resolved()
        self.policy = self.new_policy()
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.config.lr)
        self.ref: OfflinePolicy | None = None
        if self.config.bc_steps == 0 and self.config.variant == "cpl_kl":  # pragma: no cover
            raise InvalidInputError("cpl_kl needs BC pretraining")

    def _new_optimizer(self) -> None:
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.config.lr)

    def _freeze_reference(self) -> None:
        self.ref = copy.deepcopy(self.policy).requires_grad_(False)
        self.ref.eval()

    def _set_lr(self) -> None:
        """lr · multiplier · min(1, (k + 1)/warm-up) at CPL step k after BC pretraining."""
        cfg = self.config
        k = self.steps_done - self.phase_steps(cfg.bc_steps, BC_FRACTION)
        warmup = self.phase_steps(cfg.warmup_steps, WARMUP_FRACTION)
        f = 1.0 if warmup == 0 else min(1.0, (k + 1) / warmup)
        for g in self.optimizer.param_groups:
            g["lr"] = cfg.lr * cfg.cpl_lr_multiplier() * f

    def update(self) -> dict[str, float]:
        cfg = self.config
        self.policy.train()
        bc_steps = self.phase_steps(cfg.bc_steps, BC_FRACTION)
        if self.steps_done < bc_steps:
            idx = torch.as_tensor(
                self.rng.integers(0, self.n_segments, size=2 * cfg.batch_size), device=self.device
            )
            loss = self.bc_loss(self.policy, idx)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.steps_done + 1 == bc_steps:  # switch to CPL: fresh optimizer (authors)
                self._new_optimizer()
                if cfg.variant == "cpl_kl":
                    self._freeze_reference()
            return {"loss_bc": float(loss.detach())}
        self._set_lr()
        if self.dense and cfg.dense_pairs == "all":
            k = min(cfg.batch_size, self.n_segments)
            idx = torch.as_tensor(
                self.rng.choice(self.n_segments, size=k, replace=False), device=self.device
            )
            lp, S = self._scores(idx)
            loss_cpl, acc = cpl_dense_loss(S, self.scores[idx], self.lam)
            pos = torch.ones(k, dtype=torch.bool, device=self.device)
        else:
            ia, ib, lab = self.sample_pairs(cfg.batch_size)
            idx = torch.cat([ia, ib])
            lp, S = self._scores(idx)
            sa, sb = S.chunk(2)
            loss_cpl = cpl_loss(sa, sb, lab, self.lam)
            with torch.no_grad():
                keep = lab != 0.5
                acc = ((sa > sb) == (lab > 0.5))[keep].float().mean()
            pos = torch.cat([lab >= 0.5, lab <= 0.5])  # rows of idx that were preferred
        loss = loss_cpl
        row = {"loss_cpl": float(loss_cpl.detach()), "accuracy": float(acc)}
        if self.bc_coeff > 0:  # reuse the batch's log-probabilities (one forward pass)
            rows = torch.ones_like(pos) if cfg.bc_data == "all" else pos
            v = (self.valid[idx] & rows.unsqueeze(1)).to(lp.dtype)
            loss_bc = -(lp * v).sum() / torch.clamp(v.sum(), min=1.0)
            loss = loss + self.bc_coeff * loss_bc
            row["loss_bc"] = float(loss_bc.detach())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return row

    def _scores(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log π of the segments ``idx`` ``[n, T]`` and their scores S ``[n]``."""
        lp = self.policy.log_prob(self.obs[idx], self.act[idx])
        adv = lp
        if self.ref is not None:
            with torch.no_grad():
                lp_ref = self.ref.log_prob(self.obs[idx], self.act[idx])
            adv = lp - lp_ref
        return lp, segment_score(adv, self.alpha, self.discount, self.valid[idx])

    def _modules(self) -> dict[str, Any]:
        mods: dict[str, Any] = {"policy": self.policy, "optimizer": self.optimizer}
        if self.ref is not None:
            mods["ref"] = self.ref
        return mods

    def _before_load(self, state: dict[str, Any]) -> None:
        if "ref" in state:
            self._freeze_reference()
        else:
            self.ref = None
