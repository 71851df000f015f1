"""Nash learning from general preferences: exact, sampled and neural self-play updates.

The preference game: two policies π, π' over n outcomes play f(π, π') = πᵀPπ' − τKL(π‖μ) +
τKL(π'‖μ); its unique symmetric equilibrium π*_τ solves π = softmax(log μ + Pπ/τ)
(:func:`prl.games.regularized_nash`), and at τ = 0 the equilibria are the minimax (von Neumann)
winners (:func:`prl.games.minimax_winner`).

**One update rule, one place.** Every method is a small in-place kernel on unnormalised
log-policies (logits) ``z [G, n]`` of a batch of G games (games axis leading, float64, any
device), written with the pieces :func:`log_mixture`-style affine maps, the win-rate oracle
P(· ≻ q) of :mod:`algos.spo` (exact :class:`~algos.spo.WinRates` or sampled
:class:`~algos.spo.SampledWinRates`, whose duels are counted) and :func:`selfplay_direction`.

- the public ``*_step(pi, P, ...)`` functions apply one step to probabilities;
- :class:`NashSolver` iterates a kernel on a batch of games with reused buffers (checkers,
  figures, benchmarks and the ``prl run`` learners all use it);
- the neural versions (:class:`NeuralNash`) train a small torch policy whose loss gradient is
  the same direction, estimated exactly or from sampled duels (TRL's names: ``beta`` = KL
  coefficient τ, ``mixture_coef`` = Nash-MD's mixture, ``alpha`` = extrapolation).

Methods (``METHODS``), with g(q) = P(· ≻ q) and a = ητ:

============ =================================================================================
nash_md      z ← (1−a) z + a log μ + η g(π^μ), π^μ ∝ π^(1−β) μ^β (β = ητ by default); η_t =
             2/(τ(t+2)) gives KL(π*_τ‖π_T) ≤ 8/(τ²(T+1)) (Munos et al. 2023)
nash_mp      mirror prox: z½ = (z + a log μ + η g(π))/(1+a), z ← (z + a log μ + η g(π½))/(1+a);
             η = 2 contracts KL(π*_τ‖π) by (1+2τ)⁻¹ per iteration (Tiapkin et al. 2025)
egpo         extragradient: z½ = (1−a) z + a log μ + η g(π), z ← (1−a) z + a log μ + η g(π½)
             (Zhou et al. 2025; Cen et al. 2021's predictive update)
inpo         online mirror descent z ← (1−a) z + a log μ + η g(π) (Zhang et al. 2024)
online_ipo   exact gradient step of the online IPO loss on softmax logits: z ← z + η π ⊙ (v −
             ⟨π, v⟩), v = g(π) − τ log(π/μ) (Calandriello et al. 2024)
ipo_md       the same with pairs drawn from π^μ: z ← z + η ρ ⊙ (v − ⟨ρ, v⟩), ρ = π^μ, v = g(ρ) −
             τ log(π/μ)
sppo         z ← z + η g(π) (Wu et al. 2024): multiplicative weights, SPO's no-regret core
apo          z' ← INPO step from z, then Nesterov extrapolation z ← z' + α (z' − z'_prev)
             (He et al. 2024, on the preference game)
============ =================================================================================
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from prl.algos.spo import (
    SampledWinRates,
    WinRates,
    Workspace,
    _mwu_logstep,
    as_games,
    as_policy,
    check_step,
    softmax_into,
)
from prl.config import option, require
from prl.errors import ConfigError, InvalidInputError
from prl.run import Learner, register_algo
from prl.smoke import Smoke

# tiny settings of the learners below (tests/test_nash.py ENV_KW; prl.smoke reads them)
SMOKE_DUEL_RANDOM = {"game": "random", "K": 4, "seed": 2}
SMOKE_TABULAR_SOURCE = "tests/test_nash.py::test_tabular_learners_smoke_and_determinism"
SMOKE_NEURAL_SOURCE = "tests/test_nash.py::test_neural_learners_smoke_and_determinism"

Tensor = torch.Tensor

__all__ = [
    "METHODS",
    "NashSolver",
    "NeuralNash",
    "PolicyNet",
    "apo_step",
    "egpo_step",
    "inpo_step",
    "ipo_md_step",
    "log_mixture",
    "nash_md_step",
    "nash_mp_step",
    "online_ipo_step",
    "selfplay_direction",
    "sppo_step",
]


# ---------------------------------------------------------------------------------------------
# pieces
# ---------------------------------------------------------------------------------------------
def log_mixture(logpi: Tensor, logmu: Tensor | None, beta: float) -> Tensor:
    """log of the geometric mixture π^μ ∝ π^(1−β) μ^β (Nash-MD's opponent), normalised."""
    z = _affine(logpi, 1.0 - beta, logmu, beta, None)
    return z - torch.logsumexp(z, -1, keepdim=True)


def selfplay_direction(
    rho: Tensor, g: Tensor, logpi: Tensor, logmu: Tensor | None, tau: float
) -> Tensor:
    """ρ ⊙ (v − ⟨ρ, v⟩) with v = g − τ log(π/μ): the ascent direction on softmax logits.

    With ρ = π and g = P(· ≻ π) this is the self-play policy gradient of
    P(π ≻ sg π) − τKL(π‖μ) (= −τ/4 × the online-IPO loss gradient); with ρ = π^μ it is IPO-MD's.
    """
    v = g - tau * logpi if logmu is None or tau == 0 else g - tau * (logpi - logmu)
    v = torch.where(rho > 0, v, torch.zeros((), dtype=v.dtype, device=v.device))
    return rho * (v - (rho * v).sum(-1, keepdim=True))


def _unit(a: float) -> float:
    """Clamp a coefficient to [0, 1], snapping rounding noise at the ends."""
    if a > 1.0 - 1e-12:
        return 1.0
    return max(a, 0.0)


def _affine(z: Tensor, c: float, logmu: Tensor | None, d: float, out: Tensor | None) -> Tensor:
    """c·z + d·log μ (a constant shift when μ is uniform is dropped; 0·(−inf) taken as 0)."""
    if logmu is None or d == 0.0:
        if c == 0.0:
            return torch.zeros_like(z) if out is None else out.zero_()
        if c == 1.0:
            return z.clone() if out is None else (out if out is z else out.copy_(z))
        return torch.mul(z, c) if out is None else torch.mul(z, c, out=out)
    lm = logmu * d
    if c == 0.0:
        return lm.expand_as(z).clone() if out is None else out.copy_(lm.expand_as(z))
    return torch.add(lm, z, alpha=c) if out is None else torch.add(lm, z, alpha=c, out=out)


@dataclass
class _Ctx:
    """What a kernel reads besides the logits: oracle, reference, τ, mixture, α, buffers."""

    W: WinRates
    logmu: Tensor | None
    tau: float
    mixture: float | None
    alpha: float
    ws: Workspace


# ---------------------------------------------------------------------------------------------
# kernels: in place on z [G, n]; return the extra state (APO) or None
# ---------------------------------------------------------------------------------------------
def _k_nash_md(z: Tensor, extra: Any, c: _Ctx, eta: float) -> Any:
    a = _unit(eta * c.tau)
    beta = a if c.mixture is None else c.mixture
    mix = _affine(z, 1.0 - beta, c.logmu, beta, c.ws("mix", z))
    q = softmax_into(mix, c.ws)
    base = mix if beta == a else _affine(z, 1.0 - a, c.logmu, a, c.ws("base", z))
    c.W.axpy(base, q, eta, out=z)
    return extra


def _k_nash_mp(z: Tensor, extra: Any, c: _Ctx, eta: float) -> Any:
    a = eta * c.tau
    s = 1.0 / (1.0 + a)
    base = z if (c.logmu is None or a == 0.0) else _affine(z, 1.0, c.logmu, a, c.ws("base", z))
    q = softmax_into(z, c.ws)
    half = c.W.axpy(base, q, eta, out=c.ws("half", z)).mul_(s)
    q2 = softmax_into(half, c.ws)
    c.W.axpy(base, q2, eta, out=z).mul_(s)
    return extra


def _k_egpo(z: Tensor, extra: Any, c: _Ctx, eta: float) -> Any:
    a = _unit(eta * c.tau)
    q = softmax_into(z, c.ws)
    base = z if (a == 0.0) else _affine(z, 1.0 - a, c.logmu, a, c.ws("base", z))
    half = c.W.axpy(base, q, eta, out=c.ws("half", z))
    q2 = softmax_into(half, c.ws)
    c.W.axpy(base, q2, eta, out=z)
    return extra


def _k_inpo(z: Tensor, extra: Any, c: _Ctx, eta: float) -> Any:
    a = _unit(eta * c.tau)
    q = softmax_into(z, c.ws)
    if a != 0.0:
        _affine(z, 1.0 - a, c.logmu, a, z)
    c.W.axpy(z, q, eta, out=z)
    return extra


def _k_sppo(z: Tensor, extra: Any, c: _Ctx, eta: float) -> Any:
    _mwu_logstep(z, c.W, eta, c.ws)
    return extra


def _k_online_ipo(z: Tensor, extra: Any, c: _Ctx, eta: float) -> Any:
    logpi = torch.log_softmax(z, -1)
    pi = logpi.exp()
    z.add_(selfplay_direction(pi, c.W(pi), logpi, c.logmu, c.tau), alpha=eta)
    return extra


def _k_ipo_md(z: Tensor, extra: Any, c: _Ctx, eta: float) -> Any:
    beta = 0.0 if c.mixture is None else c.mixture
    rho = torch.softmax(_affine(z, 1.0 - beta, c.logmu, beta, None), -1)
    logpi = torch.log_softmax(z, -1)
    z.add_(selfplay_direction(rho, c.W(rho), logpi, c.logmu, c.tau), alpha=eta)
    return extra


def _k_apo(z: Tensor, extra: Any, c: _Ctx, eta: float) -> Any:
    a = _unit(eta * c.tau)
    q = softmax_into(z, c.ws)
    new = _affine(z, 1.0 - a, c.logmu, a, c.ws("new", z))
    c.W.axpy(new, q, eta, out=new)
    torch.mul(new, 1.0 + c.alpha, out=z).sub_(extra, alpha=c.alpha)
    extra.copy_(new)
    return extra


@dataclass(frozen=True)
class MethodSpec:
    """A registered exact update: its kernel and how its hyper-parameters are checked."""

    name: str
    kernel: Callable[[Tensor, Any, _Ctx, float], Any]
    evaluations: int  # win-rate oracle calls per iteration
    tau: str  # "positive" (τ > 0 required), "nonneg" (τ ≥ 0) or "none" (ignored)
    mirror: bool  # uses (1 − ητ): requires ητ ≤ 1
    default_eta: Callable[[float], float]
    paper: str
    description: str
    extra: bool = False  # keeps the previous un-extrapolated logits (APO)
    mixture: bool = False  # takes mixture_coef


METHODS: dict[str, MethodSpec] = {
    s.name: s
    for s in (
        MethodSpec(
            "nash_md",
            _k_nash_md,
            1,
            "positive",
            True,
            lambda tau: 1.0 / tau,
            "Munos et al. 2023 (Nash learning from human feedback)",
            "Nash-MD: mirror descent against the geometric mixture π^μ",
            mixture=True,
        ),
        MethodSpec(
            "nash_mp",
            _k_nash_mp,
            2,
            "nonneg",
            False,
            lambda tau: 2.0,
            "Tiapkin et al. 2025 (Nash-MP, mirror prox)",
            "Nash-MP: mirror prox, two proximal steps per iteration",
        ),
        MethodSpec(
            "egpo",
            _k_egpo,
            2,
            "nonneg",
            True,
            lambda tau: 1.0 / (1.0 + tau),
            "Zhou et al. 2025 (EGPO); Cen et al. 2021",
            "EGPO: extragradient on the online-IPO objective",
        ),
        MethodSpec(
            "inpo",
            _k_inpo,
            1,
            "nonneg",
            True,
            lambda tau: min(1.0, tau) if tau > 0 else 0.1,
            "Zhang et al. 2024 (INPO)",
            "INPO: online mirror descent self-play",
        ),
        MethodSpec(
            "online_ipo",
            _k_online_ipo,
            1,
            "positive",
            False,
            lambda tau: 1.0,
            "Calandriello et al. 2024 (online IPO)",
            "online IPO: exact gradient step of the online IPO loss on softmax logits",
        ),
        MethodSpec(
            "ipo_md",
            _k_ipo_md,
            1,
            "positive",
            False,
            lambda tau: 1.0,
            "Calandriello et al. 2024 (IPO-MD)",
            "IPO-MD: online IPO with pairs drawn from the Nash-MD mixture",
            mixture=True,
        ),
        MethodSpec(
            "sppo",
            _k_sppo,
            1,
            "none",
            False,
            lambda tau: 0.5,
            "Wu et al. 2024 (SPPO)",
            "SPPO: multiplicative weights π' ∝ π exp(η P(·≻π))",
        ),
        MethodSpec(
            "apo",
            _k_apo,
            1,
            "nonneg",
            True,
            lambda tau: min(1.0, tau) if tau > 0 else 0.1,
            "He et al. 2024 (APO)",
            "APO: iterative preference optimisation + Nesterov",
            extra=True,
        ),
    )
}

SCHEDULES = ("constant", "harmonic", "inv_sqrt")


def _check_tau(spec: MethodSpec, tau: Any) -> float:
    try:
        t = float(tau)
    except (TypeError, ValueError):
        raise InvalidInputError(f"tau must be a real number, got {tau!r}") from None
    if spec.tau == "none":
        return 0.0
    if not math.isfinite(t) or t < 0 or (spec.tau == "positive" and t == 0):
        need = "> 0" if spec.tau == "positive" else "≥ 0"
        raise InvalidInputError(f"{spec.name} needs tau (the KL coefficient) {need}, got {tau!r}")
    return t


def _check_unit(x: Any, name: str, hi_open: bool = False) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number in [0, 1], got {x!r}") from None
    if not (0.0 <= v <= 1.0) or (hi_open and v >= 1.0):
        raise InvalidInputError(f"{name} must be in [0, 1{')' if hi_open else ']'}, got {x!r}")
    return v


def _log_ref(mu: Any, n: int, device: torch.device) -> Tensor | None:
    """log μ as ``[1, n]`` or ``[G, n]`` (None for uniform μ: a constant shift)."""
    if mu is None:
        return None
    m = as_policy(mu, n, device, "mu")
    lm = torch.log(m)
    return lm.unsqueeze(0) if lm.ndim == 1 else lm


def _make_ctx(
    spec: MethodSpec,
    W: WinRates,
    tau: Any,
    eta: Any,
    mu: Any,
    mixture_coef: Any,
    alpha: Any,
    schedule: str = "constant",
) -> tuple[_Ctx, float]:
    t = _check_tau(spec, tau)
    if eta is None:
        e = spec.default_eta(t)
    else:
        upper = 1.0 / t if (spec.mirror and t > 0 and schedule != "harmonic") else None
        e = check_step(eta, "eta", upper)
    mix = None
    if mixture_coef is not None:
        if not spec.mixture:
            raise InvalidInputError(f"{spec.name} takes no mixture_coef")
        mix = _check_unit(mixture_coef, "mixture_coef")
    if spec.name == "ipo_md" and mix is None:
        mix = 0.1
    a = _check_unit(alpha, "alpha", hi_open=True) if spec.extra else 0.0
    logmu = _log_ref(mu, W.n, W.device)
    if logmu is not None and logmu.shape[0] not in (1, W.games):
        raise InvalidInputError(
            f"mu must have shape [n] or [{W.games}, n], got {tuple(logmu.shape)}"
        )
    return _Ctx(W=W, logmu=logmu, tau=t, mixture=mix, alpha=a, ws=Workspace()), e


def _oracle(P: Any) -> WinRates:
    return P if isinstance(P, WinRates) else WinRates(P)


def _public_step(
    name: str,
    pi: Any,
    P: Any,
    *,
    tau: Any = 0.0,
    eta: Any = None,
    mu: Any = None,
    mixture_coef: Any = None,
    alpha: Any = 0.0,
    prev: Any = None,
) -> Any:
    spec = METHODS[name]
    W = _oracle(P)
    ctx, e = _make_ctx(spec, W, tau, eta, mu, mixture_coef, alpha)
    x = as_policy(pi, W.n, W.device)
    squeeze = x.ndim == 1
    z = torch.log(x.unsqueeze(0) if squeeze else x).clone()
    extra = None
    if spec.extra:
        xp = as_policy(prev if prev is not None else pi, W.n, W.device, "prev")
        extra = torch.log(xp.unsqueeze(0) if xp.ndim == 1 else xp).expand_as(z).clone()
    extra = spec.kernel(z, extra, ctx, e)
    out = torch.softmax(z, -1)
    out = out[0] if squeeze else out
    if spec.extra:
        pv = torch.softmax(extra, -1)
        return out, (pv[0] if squeeze else pv)
    return out


# ---------------------------------------------------------------------------------------------
# public one-step functions (probabilities in, probabilities out; batched over games)
# ---------------------------------------------------------------------------------------------
def nash_md_step(
    pi: Any, P: Any, tau: float, eta: float, mu: Any = None, mixture_coef: float | None = None
) -> Tensor:
    """Nash-MD: π' ∝ π^(1−ητ) μ^(ητ) exp(η P(· ≻ π^μ)), π^μ ∝ π^(1−β) μ^β, β = ητ by default.

    Munos et al. 2023, eq. (Nash-MD); needs τ > 0 and 0 < ητ ≤ 1. ``P`` is a preference matrix
    ``[G, n, n]`` / ``[n, n]`` or a win-rate oracle (:class:`~algos.spo.SampledWinRates`).
    """
    return _public_step("nash_md", pi, P, tau=tau, eta=eta, mu=mu, mixture_coef=mixture_coef)


def nash_mp_step(pi: Any, P: Any, tau: float, eta: float = 2.0, mu: Any = None) -> Tensor:
    """Nash-MP (mirror prox): two prox steps, log π' = (log π + ητ log μ + η P(·≻π½))/(1+ητ)."""
    return _public_step("nash_mp", pi, P, tau=tau, eta=eta, mu=mu)


def egpo_step(pi: Any, P: Any, tau: float, eta: float, mu: Any = None) -> Tensor:
    """EGPO (extragradient): π½ and π' both from π^(1−ητ) μ^(ητ), with P(·≻π) then P(·≻π½)."""
    return _public_step("egpo", pi, P, tau=tau, eta=eta, mu=mu)


def inpo_step(pi: Any, P: Any, tau: float, eta: float, mu: Any = None) -> Tensor:
    """INPO (online mirror descent): π' ∝ π^(1−ητ) μ^(ητ) exp(η P(· ≻ π))."""
    return _public_step("inpo", pi, P, tau=tau, eta=eta, mu=mu)


def online_ipo_step(pi: Any, P: Any, tau: float, eta: float, mu: Any = None) -> Tensor:
    """Online IPO: z ← z + η π ⊙ (v − ⟨π, v⟩), v = P(·≻π) − τ log(π/μ) (softmax logits z)."""
    return _public_step("online_ipo", pi, P, tau=tau, eta=eta, mu=mu)


def ipo_md_step(
    pi: Any, P: Any, tau: float, eta: float, mu: Any = None, mixture_coef: float = 0.1
) -> Tensor:
    """IPO-MD: the online-IPO step with both samples from π^μ ∝ π^(1−β) μ^β (β = mixture_coef)."""
    return _public_step("ipo_md", pi, P, tau=tau, eta=eta, mu=mu, mixture_coef=mixture_coef)


def sppo_step(pi: Any, P: Any, eta: float) -> Tensor:
    """SPPO's exact update π' ∝ π exp(η P(· ≻ π)) (= :func:`algos.spo.mwu_step`)."""
    return _public_step("sppo", pi, P, eta=eta)


def apo_step(
    pi: Any, prev: Any, P: Any, tau: float, eta: float, alpha: float, mu: Any = None
) -> tuple[Tensor, Tensor]:
    """APO: π'' = INPO step from π, then π_next ∝ π'' (π''/prev)^α; returns (π_next, π'').

    ``prev`` is the previous un-extrapolated policy (pass ``pi`` at the first step); with
    α = 0 this is iterative preference optimisation (INPO / SPPO at τ = 0).
    """
    return _public_step("apo", pi, P, tau=tau, eta=eta, mu=mu, alpha=alpha, prev=prev)


# ---------------------------------------------------------------------------------------------
# the batched iterator
# ---------------------------------------------------------------------------------------------
class NashSolver:
    """Iterate one exact (or sampled) update on a batch of games, in log space with reused buffers.

    ``P`` is ``[G, n, n]`` (or ``[n, n]``); ``win_rates`` replaces the exact oracle (e.g. a
    :class:`~algos.spo.SampledWinRates` on the same games). ``schedule``: ``"constant"`` (η),
    ``"harmonic"`` (η_t = 2/(τ(t+2)), Nash-MD's theory; its default when ``eta`` is None) or
    ``"inv_sqrt"`` (η/√(t+1)).
    ``pi0`` defaults to μ (uniform when ``mu`` is None). ``average=True`` also keeps the
    running average of the iterates.
    """

    def __init__(
        self,
        method: str,
        P: Any,
        *,
        tau: float = 0.0,
        eta: float | None = None,
        mu: Any = None,
        pi0: Any = None,
        schedule: str | None = None,
        mixture_coef: float | None = None,
        alpha: float = 0.0,
        win_rates: WinRates | None = None,
        average: bool = False,
        device: Any = None,
    ) -> None:
        if method not in METHODS:
            from prl.errors import UnknownNameError

            raise UnknownNameError(f"unknown Nash method {method!r} (known: {', '.join(METHODS)})")
        self.spec = METHODS[method]
        self.method = method
        if win_rates is None:
            self.W = WinRates(P, device)
        else:
            if not isinstance(win_rates, WinRates):
                raise InvalidInputError(
                    f"win_rates must be a WinRates oracle, got {type(win_rates).__name__}"
                )
            self.W = win_rates
            if P is not None:
                G0 = as_games(P, win_rates.device)
                if tuple(G0.shape) != tuple(win_rates.P.shape):
                    raise InvalidInputError("win_rates must answer for the same games as P")
        if schedule is None:  # Nash-MD without a step size follows its theory's schedule
            schedule = "harmonic" if (method == "nash_md" and eta is None) else "constant"
        if schedule == "harmonic" and eta is not None:
            raise InvalidInputError(
                "the harmonic schedule sets η_t = 2/(τ(t+2)) itself: pass eta=None, or "
                "schedule='constant' / 'inv_sqrt' with eta"
            )
        if schedule not in SCHEDULES:
            raise InvalidInputError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.schedule = schedule
        self.ctx, self.eta = _make_ctx(
            self.spec, self.W, tau, eta, mu, mixture_coef, alpha, schedule
        )
        if schedule == "harmonic" and self.ctx.tau <= 0:
            raise InvalidInputError("the harmonic schedule 2/(τ(t+2)) needs tau > 0")
        G, n, dev = self.W.games, self.W.n, self.W.device
        if pi0 is None:
            z0 = (
                torch.zeros(G, n, dtype=torch.float64, device=dev)
                if self.ctx.logmu is None
                else self.ctx.logmu.expand(G, n)
            )
        else:
            z0 = torch.log(as_policy(pi0, n, dev, "pi0")).expand(G, n)
        self.z = z0.clone().contiguous()
        self.extra = self.z.clone() if self.spec.extra else None
        self.avg = torch.zeros(G, n, dtype=torch.float64, device=dev) if average else None
        self.t = 0

    # -- properties ----------------------------------------------------------------------------
    @property
    def tau(self) -> float:
        return self.ctx.tau

    @property
    def logmu(self) -> Tensor | None:
        return self.ctx.logmu

    @property
    def policy(self) -> Tensor:
        """Current policies π_t ``[G, n]``."""
        return torch.softmax(self.z, -1)

    @property
    def log_policy(self) -> Tensor:
        return torch.log_softmax(self.z, -1)

    @property
    def average_policy(self) -> Tensor:
        """Average of π_1..π_t (needs ``average=True``)."""
        if self.avg is None:
            raise InvalidInputError("construct NashSolver(..., average=True) to track averages")
        return self.avg.clone()

    @property
    def oracle_calls(self) -> int:
        return self.W.evaluations

    @property
    def queries(self) -> int:
        return self.W.queries

    def eta_at(self, t: int) -> float:
        """Step size of iteration t (0-based)."""
        if self.schedule == "harmonic":
            return 2.0 / (self.ctx.tau * (t + 2))
        if self.schedule == "inv_sqrt":
            return self.eta / math.sqrt(t + 1)
        return self.eta

    # -- iteration -----------------------------------------------------------------------------
    def step(self) -> None:
        """One iteration of the method on every game."""
        self.extra = self.spec.kernel(self.z, self.extra, self.ctx, self.eta_at(self.t))
        self.t += 1
        if (self.t & 63) == 0:  # keep the (shift-invariant) logits bounded
            self.z.sub_(self.z.amax(-1, keepdim=True))
            if self.extra is not None:
                self.extra.sub_(self.extra.amax(-1, keepdim=True))
        if self.avg is not None:
            self.avg.add_(torch.softmax(self.z, -1) - self.avg, alpha=1.0 / self.t)

    def run(
        self,
        steps: int,
        record_at: Any = None,
        callback: Callable[[NashSolver], Any] | None = None,
    ) -> dict[str, Any]:
        """Run ``steps`` iterations; at each iteration in ``record_at`` call ``callback(self)``.

        Returns ``{"t": array of recorded iterations, KEY: stacked values}`` where the callback
        returns a tensor (key ``"value"``) or a dict of tensors.
        """
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise InvalidInputError(f"steps must be a non-negative integer, got {steps!r}")
        start = self.t
        rec = sorted({int(r) for r in (record_at if record_at is not None else ())})
        rec = [r for r in rec if start <= r <= start + steps]
        out: dict[str, list[Any]] = {}
        ts: list[int] = []

        def take() -> None:
            if callback is None:
                return
            v = callback(self)
            ts.append(self.t)
            for k, x in (v if isinstance(v, dict) else {"value": v}).items():
                out.setdefault(k, []).append(x)

        k = 0
        while k < len(rec) and rec[k] == self.t:
            take()
            k += 1
        for _ in range(steps):
            self.step()
            while k < len(rec) and rec[k] == self.t:
                take()
                k += 1
        res: dict[str, Any] = {"t": np.asarray(ts, dtype=np.int64)}
        for key, xs in out.items():
            res[key] = torch.stack(xs) if isinstance(xs[0], Tensor) else np.asarray(xs)
        return res

    # -- resume --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        st: dict[str, Any] = {"z": self.z.clone(), "t": self.t, "oracle": self.W.state_dict()}
        if self.extra is not None:
            st["extra"] = self.extra.clone()
        if self.avg is not None:
            st["avg"] = self.avg.clone()
        return st

    def load_state_dict(self, state: dict[str, Any]) -> None:
        dev = self.z.device
        self.z = state["z"].to(device=dev, dtype=torch.float64).clone()
        self.t = int(state["t"])
        self.W.load_state_dict(state["oracle"])
        if self.extra is not None:
            self.extra = state["extra"].to(device=dev, dtype=torch.float64).clone()
        if self.avg is not None:
            self.avg = state["avg"].to(device=dev, dtype=torch.float64).clone()


# ---------------------------------------------------------------------------------------------
# `prl run` learners on the dueling bandit: exact or sampled tabular updates
# ---------------------------------------------------------------------------------------------
def _reference(n: int, scale: float, seed: int, device: Any) -> Tensor | None:
    """μ = softmax(N(0, scale²) logits) from its own seed (None = uniform when scale = 0)."""
    if scale == 0:
        return None
    g = np.random.default_rng([int(seed), 20240917])
    return torch.softmax(torch.as_tensor(g.normal(0.0, scale, n), device=device), -1)


def _dueling_only(name: str, env: str) -> None:
    if env != "dueling":
        raise ConfigError(f"{name} runs on the 'dueling' environment, not {env!r}")


def _game_of(env_name: str, env_kwargs: dict[str, Any], device: Any) -> tuple[Any, Tensor]:
    from prl import envs

    env = envs.make(env_name, **env_kwargs)
    return env, as_games(env.unwrapped.P, device)


@dataclass
class NashRunConfig:
    """Shared options of the tabular Nash learners (``prl run METHOD --env dueling``)."""

    beta: float = option(0.1, "KL coefficient τ of the regularized game (TRL's beta)")
    eta: float | None = option(None, "step size η (default: the method's theory step)")
    opponents: int = option(0, "duels per outcome per oracle call (0 = exact win rates Pπ)")
    ref_logit_scale: float = option(0.0, "std of the reference policy's logits (0 = uniform μ)")
    ref_seed: int = option(0, "seed of the reference policy's logits")

    def validate(self) -> None:
        require(math.isfinite(self.beta) and self.beta >= 0, f"beta must be ≥ 0, got {self.beta}")
        if self.eta is not None:
            require(
                math.isfinite(self.eta) and self.eta > 0, f"eta must be positive, got {self.eta}"
            )
        require(self.opponents >= 0, f"opponents must be ≥ 0, got {self.opponents}")
        require(self.ref_logit_scale >= 0, "ref_logit_scale must be ≥ 0")


@dataclass
class NashMDRunConfig(NashRunConfig):
    """Nash-MD: harmonic (theory) or constant step, optional fixed mixture coefficient."""

    schedule: str | None = option(
        None,
        "harmonic (η_t = 2/(τ(t+2))) or constant (needs --eta); default: harmonic "
        "unless --eta is given",
    )
    mixture_coef: float | None = option(None, "mixture β of π^μ ∝ π^(1−β) μ^β (None = ητ)")

    def validate(self) -> None:
        super().validate()
        require(self.beta > 0, f"Nash-MD needs beta > 0, got {self.beta}")
        require(
            self.schedule in (None, "harmonic", "constant"),
            f"schedule must be harmonic or constant, got {self.schedule!r}",
        )
        require(
            not (self.schedule == "harmonic" and self.eta is not None),
            "the harmonic schedule sets the step itself: drop --eta or use --schedule constant",
        )
        require(
            not (self.schedule == "constant" and self.eta is None),
            "Nash-MD with --schedule constant needs --eta",
        )
        if self.eta is not None:
            require(
                self.eta * self.beta <= 1,
                f"Nash-MD needs eta·beta ≤ 1, got {self.eta * self.beta:g}",
            )
        if self.mixture_coef is not None:
            require(0 <= self.mixture_coef <= 1, "mixture_coef must be in [0, 1]")


@dataclass
class IPOMDRunConfig(NashRunConfig):
    """IPO-MD: online IPO with pairs from the Nash-MD mixture."""

    mixture_coef: float = option(0.1, "mixture β of π^μ ∝ π^(1−β) μ^β")

    def validate(self) -> None:
        super().validate()
        require(self.beta > 0, f"IPO needs beta > 0, got {self.beta}")
        require(0 <= self.mixture_coef <= 1, "mixture_coef must be in [0, 1]")


@dataclass
class PositiveBetaRunConfig(NashRunConfig):
    """A method of the regularized game only (τ > 0)."""

    def validate(self) -> None:
        super().validate()
        require(self.beta > 0, f"this method needs beta > 0, got {self.beta}")


@dataclass
class APORunConfig(NashRunConfig):
    """APO: INPO step then Nesterov extrapolation of the logits."""

    alpha: float = option(0.3, "extrapolation coefficient α in [0, 1)")

    def validate(self) -> None:
        super().validate()
        require(0 <= self.alpha < 1, f"alpha must be in [0, 1), got {self.alpha}")


@dataclass
class SPPORunConfig:
    """SPPO / multiplicative-weights self-play (unregularized: the output is the average)."""

    eta: float = option(0.5, "step size η")
    schedule: str = option("constant", "constant or inv_sqrt (η/√(t+1))")
    opponents: int = option(0, "duels per outcome per oracle call (0 = exact win rates Pπ)")

    def validate(self) -> None:
        require(math.isfinite(self.eta) and self.eta > 0, f"eta must be positive, got {self.eta}")
        require(self.schedule in ("constant", "inv_sqrt"), f"bad schedule {self.schedule!r}")
        require(self.opponents >= 0, f"opponents must be ≥ 0, got {self.opponents}")


# tiny settings shared by the tabular (exact win rates: no randomness at all) and neural learners
_TABULAR_SMOKE = Smoke(
    env="dueling",
    steps=40,
    config={"ref_logit_scale": 1.0},
    env_kwargs=SMOKE_DUEL_RANDOM,
    seed_dependent=False,
    source=SMOKE_TABULAR_SOURCE,
)
_NEURAL_SMOKE = Smoke(
    env="dueling", steps=6, config={"batch": 8}, env_kwargs=SMOKE_DUEL_RANDOM,
    source=SMOKE_NEURAL_SOURCE,
)  # fmt: skip


class TabularNashLearner(Learner):
    """A tabular Nash method on the dueling bandit's P (exact or sampled win rates).

    One step = one iteration; metrics: oracle calls, duels, KL(π*_τ‖π_t) to
    :func:`prl.games.regularized_nash`, the duality gap at τ, and the exploitability of the
    last and of the average iterate (0 at a minimax winner).
    """

    method = "nash_md"
    default_steps = 500
    step_unit = "iterations"

    @classmethod
    def check_env(cls, env: str, env_kwargs: dict[str, Any]) -> None:
        _dueling_only(cls.method, env)

    def __init__(
        self, config: Any, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        from prl.games import regularized_nash

        super().__init__(config, env, env_kwargs, seed, device)
        self.env, P = _game_of(env, env_kwargs, device)
        self.P = P
        n = P.shape[-1]
        cfg = config
        tau = float(getattr(cfg, "beta", 0.0))
        self.mu = _reference(
            n, getattr(cfg, "ref_logit_scale", 0.0), getattr(cfg, "ref_seed", 0), P.device
        )
        self.gen = torch.Generator(device=P.device)
        self.gen.manual_seed(int(seed))
        W = SampledWinRates(P, cfg.opponents, self.gen) if cfg.opponents > 0 else WinRates(P)
        kw: dict[str, Any] = {}
        if hasattr(cfg, "schedule"):
            kw["schedule"] = cfg.schedule
        if hasattr(cfg, "mixture_coef"):
            kw["mixture_coef"] = cfg.mixture_coef
        if hasattr(cfg, "alpha"):
            kw["alpha"] = cfg.alpha
        eta = cfg.eta
        self.solver = NashSolver(
            self.method, P, tau=tau, eta=eta, mu=self.mu, win_rates=W, average=True, **kw
        )
        self.tau = self.solver.tau
        self.star = regularized_nash(P, self.tau, self.mu) if self.tau > 0 else None

    def _metrics(self) -> dict[str, float]:
        from prl.games import duality_gap, exploitability, kl

        pi = self.solver.policy
        row = {
            "iteration": self.solver.t,
            "oracle_calls": self.solver.oracle_calls,
            "queries": self.solver.queries,
            "exploitability": float(exploitability(self.P, pi)[0]),
            "exploitability_avg": float(exploitability(self.P, self.solver.average_policy)[0]),
        }
        if self.star is not None:
            row["kl_to_equilibrium"] = float(kl(self.star, pi)[0])
            row["duality_gap"] = float(duality_gap(self.P, pi, self.tau, self.mu)[0])
        return row

    def step(self) -> dict[str, float]:
        self.solver.step()
        self.steps_done += 1
        return self._metrics()

    def policy(self) -> np.ndarray:
        """The current policy (the average for the unregularized SPPO)."""
        pi = self.solver.average_policy if self.method == "sppo" else self.solver.policy
        return pi[0].cpu().numpy()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "solver": self.solver.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.solver.load_state_dict(state["solver"])

    def close(self) -> None:
        self.env.close()


@register_algo(
    "nash_md",
    description="Nash-MD (Munos et al.): mirror descent vs the geometric mixture",
    envs=("dueling",),
)
class NashMDLearner(TabularNashLearner):
    """Nash-MD (Munos et al.): mirror descent vs the geometric mixture (dueling bandit)."""

    method = "nash_md"
    Config = NashMDRunConfig
    smoke = replace(_TABULAR_SMOKE, family="nash")


@register_algo(
    "nash_mp",
    description="Nash-MP (Tiapkin et al.): mirror prox, linear last-iterate rate",
    envs=("dueling",),
)
class NashMPLearner(TabularNashLearner):
    """Nash-MP (Tiapkin et al.): mirror prox, linear last-iterate rate (dueling bandit)."""

    method = "nash_mp"
    Config = NashRunConfig
    smoke = _TABULAR_SMOKE


@register_algo(
    "egpo",
    description="EGPO (Zhou et al.): extragradient on the online-IPO objective",
    envs=("dueling",),
)
class EGPOLearner(TabularNashLearner):
    """EGPO (Zhou et al.): extragradient on the online-IPO objective (dueling bandit)."""

    method = "egpo"
    Config = NashRunConfig
    smoke = _TABULAR_SMOKE


@register_algo(
    "inpo", description="INPO (Zhang et al.): online mirror descent self-play", envs=("dueling",)
)
class INPOLearner(TabularNashLearner):
    """INPO (Zhang et al.): online mirror descent self-play (dueling bandit)."""

    method = "inpo"
    Config = NashRunConfig
    smoke = _TABULAR_SMOKE


@register_algo(
    "online_ipo",
    description="online IPO (Calandriello et al.): exact/sampled gradient",
    envs=("dueling",),
)
class OnlineIPOLearner(TabularNashLearner):
    """online IPO (Calandriello et al.): exact/sampled gradient (dueling bandit)."""

    method = "online_ipo"
    Config = PositiveBetaRunConfig
    smoke = _TABULAR_SMOKE


@register_algo(
    "ipo_md",
    description="IPO-MD (Calandriello et al.): online IPO vs the Nash-MD mixture",
    envs=("dueling",),
)
class IPOMDLearner(TabularNashLearner):
    """IPO-MD (Calandriello et al.): online IPO vs the Nash-MD mixture (dueling bandit)."""

    method = "ipo_md"
    Config = IPOMDRunConfig
    smoke = _TABULAR_SMOKE


@register_algo(
    "sppo",
    description="SPPO (Wu et al.): multiplicative-weights self-play, averaged",
    envs=("dueling",),
)
class SPPOLearner(TabularNashLearner):
    """SPPO (Wu et al.): multiplicative-weights self-play, averaged (dueling bandit)."""

    method = "sppo"
    Config = SPPORunConfig
    smoke = Smoke(
        env="dueling",
        steps=40,
        config={},
        env_kwargs=SMOKE_DUEL_RANDOM,
        seed_dependent=False,  # exact win rates: no randomness at all
        source=SMOKE_TABULAR_SOURCE,
    )


@register_algo(
    "apo",
    description="APO (He et al.): iterative preference optimisation with Nesterov",
    envs=("dueling",),
)
class APOLearner(TabularNashLearner):
    """APO (He et al.): iterative preference optimisation with Nesterov (dueling bandit)."""

    method = "apo"
    Config = APORunConfig
    smoke = _TABULAR_SMOKE


# ---------------------------------------------------------------------------------------------
# neural versions: a small torch policy trained with the same update directions
# ---------------------------------------------------------------------------------------------
class PolicyNet(nn.Module):
    """π_θ(·|x) over n actions: free logits per context, or an MLP of context features.

    ``context_dim = 0``: a table of logits ``[contexts, n]``; otherwise an MLP
    (:func:`prl.nets.mlp`) from features ``[C, context_dim]``. float64 throughout.
    """

    def __init__(
        self,
        n_actions: int,
        contexts: int = 1,
        context_dim: int = 0,
        hidden: tuple[int, ...] | list[int] = (),
        init_logits: Tensor | None = None,
    ) -> None:
        super().__init__()
        if context_dim == 0:
            init = (
                torch.zeros(contexts, n_actions, dtype=torch.float64)
                if init_logits is None
                else torch.as_tensor(init_logits, dtype=torch.float64).reshape(contexts, n_actions)
            )
            self.table = nn.Parameter(init.clone())
            self.net = None
        else:
            from prl.nets import mlp

            self.table = None
            self.net = mlp(context_dim, n_actions, tuple(hidden)).to(torch.float64)

    def forward(self, x: Tensor | None = None) -> Tensor:
        """Logits ``[C, n]``."""
        if self.net is None:
            return self.table
        if x is None:
            raise InvalidInputError("this PolicyNet needs context features x [C, context_dim]")
        return self.net(x)


NEURAL_METHODS = ("nash_md_pg", "nash_ema", "online_ipo", "egpo", "sppo")


class NeuralNash:
    """Train a :class:`PolicyNet` on games ``P [C, n, n]`` (one game per context) by a neural
    Nash method, reusing the exact updates' pieces.

    - ``nash_md_pg`` (Munos et al.): ascent on P(π ≻ π^μ) − β KL(π‖μ), π^μ the geometric
      mixture of sg(π) and μ with ``mixture_coef`` (:func:`log_mixture`);
    - ``nash_ema``: the same against an exponential moving average of the parameters
      (coefficient ``ema``);
    - ``online_ipo``: the online-IPO loss (:func:`algos.dpo.ipo_loss`) on pairs from sg(π)
      (from π^μ when ``mixture_coef`` > 0: IPO-MD);
    - ``egpo``: EGPO's multiplicative extragradient as two regressions of the logits onto the
      mirror step t(q) = (1−ητ) log π_t + ητ log μ + η P(·≻q): the squared error of the
      log-ratios, (n/4)·E_{y,y'∼U}[(h_θ(y,y') − h_t(y,y'))²] = ½‖C(z_θ − t)‖² (C centres over
      actions), first against q = π_t (an extrapolation step, giving π½), then, from the
      current parameters, against q = π½. Its logit gradient is C(z_θ − t), so one SGD step of
      lr 1 on a logit table is exactly :func:`egpo_step`; sampled: uniform pairs (y, y') and
      one duel of each against a draw from q (an unbiased gradient);
    - ``sppo``: SPPO's squared loss (log π_θ(y) − log π_t(y) − η(P(y ≻ π_t) − ½))², π_t
      refreshed every ``inner_steps`` updates.

    ``estimator="exact"``: expectations over actions with exact win rates (the loss gradient is
    exactly :func:`selfplay_direction` on the logits); ``"sampled"``: ``batch`` samples per
    context with duels drawn from P (queries counted), as in TRL's trainers. ``anneal`` > 0
    decays the learning rate linearly to 0 over that many updates (as TRL's default schedule).
    """

    def __init__(
        self,
        method: str,
        P: Any,
        *,
        beta: float = 0.1,
        lr: float = 0.05,
        mu: Any = None,
        mixture_coef: float = 0.0,
        ema: float = 0.05,
        eta: float = 1.0,
        inner_steps: int = 20,
        estimator: str = "exact",
        batch: int = 64,
        opponents: int = 1,
        contexts: Tensor | None = None,
        hidden: tuple[int, ...] | list[int] = (),
        optimizer: str = "adam",
        anneal: int = 0,
        generator: torch.Generator | None = None,
        device: Any = None,
        init_logits: Tensor | None = None,
    ) -> None:
        if method not in NEURAL_METHODS:
            from prl.errors import UnknownNameError

            raise UnknownNameError(
                f"unknown neural Nash method {method!r} (known: {', '.join(NEURAL_METHODS)})"
            )
        if estimator not in ("exact", "sampled"):
            raise InvalidInputError(f"estimator must be 'exact' or 'sampled', got {estimator!r}")
        if optimizer not in ("adam", "sgd"):
            raise InvalidInputError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        self.method = method
        self.estimator = estimator
        self.P = as_games(P, device)
        C, n, dev = self.P.shape[0], self.P.shape[-1], self.P.device
        self.tau = float(beta)
        if method != "sppo" and (not math.isfinite(self.tau) or self.tau <= 0):
            raise InvalidInputError(f"{method} needs beta (the KL coefficient) > 0, got {beta!r}")
        self.lr = check_step(lr, "lr")
        self.mixture = _check_unit(mixture_coef, "mixture_coef")
        self.ema_coef = _check_unit(ema, "ema")
        self.eta = check_step(eta, "eta", 1.0 / self.tau if method == "egpo" else None)
        if isinstance(inner_steps, bool) or int(inner_steps) < 1:
            raise InvalidInputError(f"inner_steps must be a positive integer, got {inner_steps!r}")
        self.inner_steps = int(inner_steps)
        if isinstance(batch, bool) or int(batch) < 2:
            raise InvalidInputError(f"batch must be an integer ≥ 2, got {batch!r}")
        self.batch = int(batch)
        self.logmu = _log_ref(mu, n, dev)
        self.gen = generator if generator is not None else torch.Generator(device=dev)
        self.W = WinRates(self.P)
        self.W_sampled = SampledWinRates(self.P, int(opponents), self.gen)
        if contexts is None and len(tuple(hidden)) > 0:
            contexts = torch.eye(C, dtype=torch.float64, device=dev)
        self.x = (
            None if contexts is None else torch.as_tensor(contexts, dtype=torch.float64, device=dev)
        )
        if init_logits is None and self.logmu is not None:
            init_logits = self.logmu.expand(C, n)
        self.net = PolicyNet(
            n, C, 0 if self.x is None else self.x.shape[-1], hidden, init_logits
        ).to(dev)
        params = list(self.net.parameters())
        self.opt = (
            torch.optim.Adam(params, lr=self.lr)
            if optimizer == "adam"
            else torch.optim.SGD(params, lr=self.lr)
        )
        if isinstance(anneal, bool) or int(anneal) < 0:
            raise InvalidInputError(f"anneal must be a non-negative integer, got {anneal!r}")
        self.anneal = int(anneal)
        self.ema_net = copy.deepcopy(self.net) if method == "nash_ema" else None
        self.t = 0
        self.queries = 0
        self.anchor: Tensor | None = None  # SPPO's π_t (log)
        self.target: Tensor | None = None
        self.avg = torch.zeros(C, n, dtype=torch.float64, device=dev)
        self.anchors = 0

    # -- policies ------------------------------------------------------------------------------
    def logits(self) -> Tensor:
        return self.net(self.x)

    @property
    def policy(self) -> Tensor:
        """Current π_θ ``[C, n]`` (no grad)."""
        with torch.no_grad():
            return torch.softmax(self.logits(), -1)

    @property
    def average_policy(self) -> Tensor:
        """SPPO: the average of the anchors π_t; other methods: the current policy."""
        return self.avg.clone() if self.method == "sppo" and self.anchors else self.policy

    # -- sampling helpers ----------------------------------------------------------------------
    def _sample(self, probs: Tensor) -> Tensor:
        return torch.multinomial(probs, self.batch, replacement=True, generator=self.gen)

    def _duel(self, y: Tensor, y2: Tensor) -> Tensor:
        C = self.P.shape[0]
        p = self.P[torch.arange(C, device=y.device)[:, None], y, y2]
        u = torch.rand(p.shape, generator=self.gen, dtype=p.dtype, device=p.device)
        self.queries += int(p.numel())
        return (u < p).to(p.dtype)

    def _opponent_log(self, logpi: Tensor) -> Tensor:
        """log of the opponent / sampling policy (detached)."""
        if self.method == "nash_ema":
            assert self.ema_net is not None
            with torch.no_grad():
                return torch.log_softmax(self.ema_net(self.x), -1)
        return log_mixture(logpi.detach(), self.logmu, self.mixture)

    def _r(self, logpi: Tensor) -> Tensor:
        return logpi if self.logmu is None else logpi - self.logmu

    # -- losses --------------------------------------------------------------------------------
    def loss(self) -> Tensor:
        """The method's loss at the current parameters (one fresh batch when sampled)."""
        from prl.algos.dpo import ipo_loss

        L = self.logits()
        logpi = torch.log_softmax(L, -1)
        if self.method in ("nash_md_pg", "nash_ema"):
            lrho = self._opponent_log(logpi)
            if self.estimator == "exact":
                rho = lrho.exp()
                d = selfplay_direction(
                    logpi.detach().exp(), self.W(rho), logpi.detach(), self.logmu, self.tau
                )
                return -(d * L).sum(-1).mean()
            y = self._sample(logpi.detach().exp())
            y2 = self._sample(lrho.exp())
            o = self._duel(y, y2)
            lp = logpi.gather(1, y)
            R = o - self.tau * self._r(logpi.detach()).gather(1, y)
            base = (R.sum(-1, keepdim=True) - R) / (self.batch - 1)  # leave-one-out baseline
            return -((R - base) * lp).mean()
        if self.method == "egpo":  # the extrapolation loss (against π_t itself)
            return self._egpo_loss(L, logpi.detach(), logpi.detach().exp())
        if self.method == "online_ipo":
            r = self._r(logpi)
            lrho = log_mixture(logpi.detach(), self.logmu, self.mixture)
            if self.estimator == "exact":
                rho = lrho.exp()
                h = r[:, :, None] - r[:, None, :]
                w = rho[:, :, None] * rho[:, None, :]
                return (w * ipo_loss(h, self.P, self.tau)).sum((-1, -2)).mean()
            y, y2 = self._sample(lrho.exp()), self._sample(lrho.exp())
            o = self._duel(y, y2)
            h = r.gather(1, y) - r.gather(1, y2)
            return ipo_loss(h, o, self.tau).mean()
        # sppo
        if self.anchor is None or self.t % self.inner_steps == 0:
            self._refresh_anchor(logpi.detach())
        assert self.anchor is not None and self.target is not None
        if self.estimator == "exact":
            return (self.anchor.exp() * (logpi - self.target) ** 2).sum(-1).mean()
        y = self._sample(self.anchor.exp())
        return ((logpi.gather(1, y) - self.target.gather(1, y)) ** 2).mean()

    def _egpo_loss(self, L: Tensor, anchor: Tensor, q: Tensor) -> Tensor:
        """½‖C(z_θ − t)‖² summed over contexts, t = (1−ητ) log π_t + ητ log μ + η P(·≻q) the
        mirror step from the anchor log π_t against q (detached); sampled: (n/4)·mean over
        uniform pairs of (h_θ − ĥ_t)², ĥ_t with one duel of y and of y' against draws from q."""
        a = self.eta * self.tau
        base = (1.0 - a) * anchor if self.logmu is None else (1.0 - a) * anchor + a * self.logmu
        n = L.shape[-1]
        if self.estimator == "exact":
            d = L - (base + self.eta * self.W(q)).detach()
            dc = d - d.mean(-1, keepdim=True)
            return 0.5 * (dc * dc).sum()
        C = L.shape[0]
        y = torch.randint(n, (C, self.batch), generator=self.gen, device=L.device)
        y2 = torch.randint(n, (C, self.batch), generator=self.gen, device=L.device)
        o = self._duel(y, self._sample(q)) - self._duel(y2, self._sample(q))
        h = L.gather(1, y) - L.gather(1, y2)
        ht = base.gather(1, y) - base.gather(1, y2) + self.eta * o
        return 0.25 * n * ((h - ht.detach()) ** 2).mean(-1).sum()

    def _refresh_anchor(self, logpi: Tensor) -> None:
        pi = logpi.exp()
        if self.estimator == "exact":
            g = self.W(pi)
        else:
            before = self.W_sampled.queries
            g = self.W_sampled(pi)
            self.queries += self.W_sampled.queries - before
        self.anchor = logpi.clone()
        self.target = logpi + self.eta * (g - 0.5)
        self.anchors += 1
        self.avg.add_(pi - self.avg, alpha=1.0 / self.anchors)

    # -- training ------------------------------------------------------------------------------
    def current_lr(self) -> float:
        """lr, decayed linearly to 0 over ``anneal`` updates when ``anneal`` > 0."""
        if self.anneal == 0:
            return self.lr
        return self.lr * max(0.0, 1.0 - self.t / self.anneal)

    def step(self) -> dict[str, float]:
        """One optimizer update (two gradient evaluations for EGPO's extragradient)."""
        for group in self.opt.param_groups:
            group["lr"] = self.current_lr()
        if self.method == "egpo":
            backup = [p.detach().clone() for p in self.net.parameters()]
            opt_state = copy.deepcopy(self.opt.state_dict())
            with torch.no_grad():
                anchor = torch.log_softmax(self.logits(), -1)  # log π_t
            self.opt.zero_grad()
            self._egpo_loss(self.logits(), anchor, anchor.exp()).backward()
            self.opt.step()  # extrapolate to π½
            with torch.no_grad():
                half = torch.softmax(self.logits(), -1)
                for p, b in zip(self.net.parameters(), backup, strict=True):
                    p.copy_(b)
            self.opt.load_state_dict(opt_state)
            self.opt.zero_grad()
            loss = self._egpo_loss(self.logits(), anchor, half)  # from θ_t, against π½
            loss.backward()
            self.opt.step()
        else:
            self.opt.zero_grad()
            loss = self.loss()
            loss.backward()
            self.opt.step()
        if self.ema_net is not None:
            with torch.no_grad():
                for pe, p in zip(self.ema_net.parameters(), self.net.parameters(), strict=True):
                    pe.mul_(1.0 - self.ema_coef).add_(p, alpha=self.ema_coef)
        self.t += 1
        return {"loss": float(loss.detach()), "queries": self.queries}

    def train(self, steps: int) -> NeuralNash:
        """Run ``steps`` updates."""
        for _ in range(int(steps)):
            self.step()
        return self

    # -- resume --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        st: dict[str, Any] = {
            "net": self.net.state_dict(),
            "opt": self.opt.state_dict(),
            "generator": self.gen.get_state(),
            "t": self.t,
            "queries": self.queries,
            "avg": self.avg.clone(),
            "anchors": self.anchors,
            "W": self.W.state_dict(),
            "W_sampled": {k: v for k, v in self.W_sampled.state_dict().items() if k != "generator"},
        }
        if self.ema_net is not None:
            st["ema"] = self.ema_net.state_dict()
        if self.anchor is not None and self.target is not None:
            st["anchor"] = self.anchor.clone()
            st["target"] = self.target.clone()
        return st

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["generator"])
        self.t = int(state["t"])
        self.queries = int(state["queries"])
        self.avg = state["avg"].to(self.avg.device).clone()
        self.anchors = int(state["anchors"])
        self.W.evaluations = int(state["W"]["evaluations"])
        self.W_sampled.evaluations = int(state["W_sampled"]["evaluations"])
        self.W_sampled.queries = int(state["W_sampled"]["queries"])
        if self.ema_net is not None:
            self.ema_net.load_state_dict(state["ema"])
        if "anchor" in state:
            self.anchor = state["anchor"].to(self.avg.device).clone()
            self.target = state["target"].to(self.avg.device).clone()


@dataclass
class NeuralRunConfig:
    """Options of the neural Nash learners (TRL's names where they exist)."""

    beta: float = option(0.1, "KL coefficient τ (TRL's beta)")
    lr: float = option(0.05, "optimizer learning rate")
    estimator: str = option("sampled", "sampled (duels, TRL-style) or exact (expectations)")
    batch: int = option(64, "samples (and duels) per update")
    optimizer: str = option("adam", "adam or sgd")
    hidden: list[int] = option([], "MLP hidden sizes ([] = a free logit per action)")  # noqa: RUF009
    ref_logit_scale: float = option(0.0, "std of the reference policy's logits (0 = uniform μ)")
    ref_seed: int = option(0, "seed of the reference policy's logits")

    def validate(self) -> None:
        require(math.isfinite(self.beta) and self.beta > 0, f"beta must be > 0, got {self.beta}")
        require(math.isfinite(self.lr) and self.lr > 0, f"lr must be positive, got {self.lr}")
        require(self.estimator in ("sampled", "exact"), f"bad estimator {self.estimator!r}")
        require(self.batch >= 2, f"batch must be ≥ 2, got {self.batch}")
        require(self.optimizer in ("adam", "sgd"), f"bad optimizer {self.optimizer!r}")
        require(all(h > 0 for h in self.hidden), "hidden sizes must be positive")
        require(self.ref_logit_scale >= 0, "ref_logit_scale must be ≥ 0")


@dataclass
class NashMDPGRunConfig(NeuralRunConfig):
    """Nash-MD-PG."""

    mixture_coef: float = option(0.1, "mixture β of the opponent π^μ ∝ π^(1−β) μ^β")

    def validate(self) -> None:
        super().validate()
        require(0 <= self.mixture_coef <= 1, "mixture_coef must be in [0, 1]")


@dataclass
class NashEMARunConfig(NeuralRunConfig):
    """Nash-EMA."""

    ema: float = option(0.05, "EMA coefficient of the opponent's parameters")

    def validate(self) -> None:
        super().validate()
        require(0 < self.ema <= 1, "ema must be in (0, 1]")


@dataclass
class OnlineIPONNRunConfig(NeuralRunConfig):
    """Online IPO (IPO-MD when mixture_coef > 0)."""

    mixture_coef: float = option(0.0, "sample pairs from π^μ (0 = online IPO, > 0 = IPO-MD)")

    def validate(self) -> None:
        super().validate()
        require(0 <= self.mixture_coef <= 1, "mixture_coef must be in [0, 1]")


@dataclass
class EGPONNRunConfig(NeuralRunConfig):
    """EGPO's mirror extragradient as logit regressions."""

    eta: float = option(1.0, "EGPO step η of the mirror target (needs η·beta ≤ 1)")

    def validate(self) -> None:
        super().validate()
        require(self.eta > 0, "eta must be positive")
        require(self.eta * self.beta <= 1.0, f"eta·beta must be ≤ 1, got {self.eta * self.beta}")


@dataclass
class SPPONNRunConfig(NeuralRunConfig):
    """SPPO's squared loss."""

    eta: float = option(1.0, "SPPO step η in the target log π_t + η(P(y≻π_t) − ½)")
    inner_steps: int = option(20, "optimizer updates per SPPO iteration")
    opponents: int = option(4, "duels per action when estimating P(y ≻ π_t) (sampled)")

    def validate(self) -> None:
        super().validate()
        require(self.eta > 0, "eta must be positive")
        require(self.inner_steps >= 1, "inner_steps must be ≥ 1")
        require(self.opponents >= 1, "opponents must be ≥ 1")


class NeuralNashLearner(Learner):
    """A neural Nash method on the dueling bandit (one context); one step = one update."""

    method = "nash_md_pg"
    algo_name = "nash_md_pg"
    default_steps = 500
    step_unit = "iterations"

    @classmethod
    def check_env(cls, env: str, env_kwargs: dict[str, Any]) -> None:
        _dueling_only(cls.algo_name, env)

    def __init__(
        self, config: Any, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        from prl.games import minimax_winner, regularized_nash

        super().__init__(config, env, env_kwargs, seed, device)
        self.env, P = _game_of(env, env_kwargs, device)
        self.P = P
        n = P.shape[-1]
        cfg = config
        self.mu = _reference(n, cfg.ref_logit_scale, cfg.ref_seed, P.device)
        gen = torch.Generator(device=P.device)
        gen.manual_seed(int(seed))
        torch.manual_seed(int(seed))  # MLP initialisation
        kw = {
            k: getattr(cfg, k)
            for k in ("mixture_coef", "ema", "eta", "inner_steps", "opponents")
            if hasattr(cfg, k)
        }
        self.nn = NeuralNash(
            self.method,
            P,
            beta=cfg.beta,
            lr=cfg.lr,
            mu=self.mu,
            estimator=cfg.estimator,
            batch=cfg.batch,
            hidden=tuple(cfg.hidden),
            optimizer=cfg.optimizer,
            generator=gen,
            **kw,
        )
        if self.method == "sppo":
            self.star = torch.as_tensor(minimax_winner(P[0])[0], device=P.device).unsqueeze(0)
        else:
            self.star = regularized_nash(P, cfg.beta, self.mu)

    def step(self) -> dict[str, float]:
        from prl.games import exploitability

        row = self.nn.step()
        self.steps_done += 1
        pi = self.nn.average_policy
        return {
            "iteration": self.nn.t,
            "queries": self.nn.queries,
            "loss": row["loss"],
            "tv_to_equilibrium": float(0.5 * (pi - self.star).abs().sum()),
            "exploitability": float(exploitability(self.P, pi)[0]),
        }

    def policy(self) -> np.ndarray:
        return self.nn.average_policy[0].cpu().numpy()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "nn": self.nn.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.nn.load_state_dict(state["nn"])

    def close(self) -> None:
        self.env.close()


@register_algo(
    "nash_md_pg", description="Nash-MD-PG: neural policy gradient vs π^μ", envs=("dueling",)
)
class NashMDPGLearner(NeuralNashLearner):
    """Nash-MD-PG: neural policy gradient vs π^μ (dueling bandit)."""

    method = "nash_md_pg"
    algo_name = "nash_md_pg"
    Config = NashMDPGRunConfig
    smoke = _NEURAL_SMOKE


@register_algo(
    "nash_ema", description="Nash-EMA: neural self-play vs an EMA opponent", envs=("dueling",)
)
class NashEMALearner(NeuralNashLearner):
    """Nash-EMA: neural self-play vs an EMA opponent (dueling bandit)."""

    method = "nash_ema"
    algo_name = "nash_ema"
    Config = NashEMARunConfig
    smoke = _NEURAL_SMOKE


@register_algo("online_ipo_nn", description="online IPO loss on a neural policy", envs=("dueling",))
class OnlineIPONNLearner(NeuralNashLearner):
    """online IPO loss on a neural policy (dueling bandit)."""

    method = "online_ipo"
    algo_name = "online_ipo_nn"
    Config = OnlineIPONNRunConfig
    smoke = _NEURAL_SMOKE


@register_algo(
    "egpo_nn", description="EGPO: mirror extragradient by logit regressions", envs=("dueling",)
)
class EGPONNLearner(NeuralNashLearner):
    """EGPO: mirror extragradient by logit regressions (dueling bandit)."""

    method = "egpo"
    algo_name = "egpo_nn"
    Config = EGPONNRunConfig
    smoke = _NEURAL_SMOKE


@register_algo("sppo_nn", description="SPPO's squared loss on a neural policy", envs=("dueling",))
class SPPONNLearner(NeuralNashLearner):
    """SPPO's squared loss on a neural policy (dueling bandit)."""

    method = "sppo"
    algo_name = "sppo_nn"
    Config = SPPONNRunConfig
    smoke = _NEURAL_SMOKE
