"""SPO — self-play preference optimization (Swamy et al., "A Minimaximalist Approach to RLHF").

Self-play on the skew-symmetric preference game: sample from the current policy, reward each
sample by its win rate against the others, and take a no-regret step. In a symmetric game the
exploitability of the averaged policy equals Regret(T)/T exactly, so any no-regret learner
converges to the minimax winner at its regret rate (multiplicative weights: O(√(log n / T))).

This module holds SPO's no-regret core, shared by every method of :mod:`algos.nash`:

- :func:`as_games` — validated preference matrices as float64 torch ``[G, n, n]`` (games axis
  leading, any device);
- win-rate oracles answering P(y ≻ q) for every outcome y: :class:`WinRates` (exact, ``P q``)
  and :class:`SampledWinRates` (from ``opponents`` duels per outcome, queries counted);
- :func:`mwu_step` (one multiplicative-weights step) and :func:`selfplay_mwu` (a batched
  self-play run with exact regret accounting, average and last iterates);
- the bandit learner ``spo_bandit`` (sampled duels, score-function step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from prl.config import option, require
from prl.errors import InvalidInputError
from prl.run import Learner, register_algo
from prl.smoke import Smoke

Tensor = torch.Tensor

__all__ = [
    "SPOBandit",
    "SampledWinRates",
    "SelfPlayResult",
    "WinRates",
    "Workspace",
    "as_games",
    "as_policy",
    "check_step",
    "mwu_step",
    "selfplay_mwu",
    "softmax_into",
    "win_rate_policy_gradient",
]


# ---------------------------------------------------------------------------------------------
# validated inputs
# ---------------------------------------------------------------------------------------------
def as_games(P: Any, device: Any = None) -> Tensor:
    """Preference matrices as float64 torch ``[G, n, n]`` (one game ``[n, n]`` gets G = 1).

    Accepts numpy arrays, tensors or a :class:`prl.oracles.PreferenceMatrix`; validated with
    :func:`prl.games.validate_preference_matrix` (square, finite, in [0, 1], P + Pᵀ = 1).
    """
    from prl.games import validate_preference_matrix

    inner = getattr(P, "P", None)
    if inner is not None and not isinstance(P, (np.ndarray, Tensor)):
        P = inner  # a PreferenceMatrix oracle
    if isinstance(P, Tensor):
        T = P.detach().to(dtype=torch.float64, device=device if device is not None else P.device)
    else:
        try:
            arr = np.asarray(P, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"P must be a preference matrix [G, n, n] or [n, n], got {type(P).__name__} ({exc})"
            ) from None
        T = torch.as_tensor(arr, device=device)
    if T.ndim == 2:
        T = T.unsqueeze(0)
    if T.ndim != 3:
        raise InvalidInputError(
            f"P must have shape [n, n] or [G, n, n] (games axis leading), got {tuple(T.shape)}"
        )
    return validate_preference_matrix(T).contiguous()


def as_policy(pi: Any, n: int, device: Any, name: str = "pi", atol: float = 1e-9) -> Tensor:
    """A (batch of) probability vectors ``[n]`` / ``[G, n]`` as float64 torch on ``device``."""
    x = pi.detach() if isinstance(pi, Tensor) else torch.as_tensor(np.asarray(pi, dtype=np.float64))
    x = x.to(dtype=torch.float64, device=device)
    if x.ndim not in (1, 2) or x.shape[-1] != n:
        raise InvalidInputError(f"{name} must have shape [{n}] or [G, {n}], got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise InvalidInputError(f"{name} contains NaN or inf")
    if bool((x < -atol).any()):
        raise InvalidInputError(f"{name} must be non-negative, got an entry {float(x.min()):.3g}")
    dev = float((x.sum(-1) - 1.0).abs().max())
    if dev > max(atol, 1e-6):
        raise InvalidInputError(f"{name} must sum to 1 over its last axis, off by {dev:.3g}")
    x = x.clamp_min(0.0)
    return x / x.sum(-1, keepdim=True)


def check_step(eta: Any, name: str = "eta", upper: float | None = None) -> float:
    """A finite step size in (0, upper] (InvalidInputError otherwise)."""
    try:
        e = float(eta)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a positive number, got {eta!r}") from None
    if not math.isfinite(e) or e <= 0 or (upper is not None and e > upper * (1 + 1e-12)):
        rng = "> 0" if upper is None else f"in (0, {upper:.6g}]"
        raise InvalidInputError(f"{name} must be finite and {rng}, got {eta!r}")
    return e


# ---------------------------------------------------------------------------------------------
# scratch buffers and a softmax that reuses them
# ---------------------------------------------------------------------------------------------
class Workspace:
    """Named scratch tensors reused across iterations, so long batched loops do not allocate."""

    def __init__(self) -> None:
        self._bufs: dict[str, Tensor] = {}

    def __call__(self, key: str, like: Tensor, shape: tuple[int, ...] | None = None) -> Tensor:
        shape = tuple(like.shape) if shape is None else tuple(shape)
        b = self._bufs.get(key)
        if b is None or tuple(b.shape) != shape or b.device != like.device or b.dtype != like.dtype:
            b = torch.empty(shape, dtype=like.dtype, device=like.device)
            self._bufs[key] = b
        return b


def softmax_into(z: Tensor, ws: Workspace | None = None, key: str = "q") -> Tensor:
    """softmax(z) over the last axis; for large CPU batches written into a reused buffer of
    ``ws`` (fewer page faults than a fresh 80 MB tensor per call); else ``torch.softmax``."""
    if ws is None or z.is_cuda or z.numel() < (1 << 16):
        return torch.softmax(z, -1)
    out = ws(key, z)
    m = ws(key + "/m", z, (*z.shape[:-1], 1))
    torch.amax(z, -1, keepdim=True, out=m)
    torch.sub(z, m, out=out).exp_()
    torch.sum(out, -1, keepdim=True, out=m)
    return out.div_(m)


# ---------------------------------------------------------------------------------------------
# win-rate oracles: P(y ≻ q) for every outcome y
# ---------------------------------------------------------------------------------------------
class WinRates:
    """Exact win rates P(y ≻ q) = (P q)_y for a batch of games ``P [G, n, n]``.

    ``evaluations`` counts oracle calls (one per policy evaluated); ``queries`` counts duels
    (0 here: the exact oracle reads P).
    """

    def __init__(self, P: Any, device: Any = None) -> None:
        self.P = as_games(P, device)
        self.evaluations = 0
        self.queries = 0

    @property
    def games(self) -> int:
        return int(self.P.shape[0])

    @property
    def n(self) -> int:
        return int(self.P.shape[-1])

    @property
    def device(self) -> torch.device:
        return self.P.device

    def _estimate(self, q: Tensor) -> Tensor:
        return (self.P @ q.unsqueeze(-1)).squeeze(-1)

    def __call__(self, q: Tensor) -> Tensor:
        """Win rates ``[G, n]`` of every outcome against the policies ``q [G, n]``."""
        self.evaluations += 1
        return self._estimate(q)

    def axpy(self, base: Tensor, q: Tensor, alpha: float, out: Tensor | None = None) -> Tensor:
        """``base + alpha · P(· ≻ q)`` (written into ``out``; ``out`` may be ``base``)."""
        if type(self)._estimate is not WinRates._estimate or self.P.shape[0] != q.shape[0]:
            g = self(q)
            if out is None:
                return base + alpha * g
            if out is base:
                return out.add_(g, alpha=alpha)
            return torch.add(base, g, alpha=alpha, out=out)
        self.evaluations += 1
        if out is base:
            base.unsqueeze(-1).baddbmm_(self.P, q.unsqueeze(-1), alpha=alpha)
            return base
        if out is None:
            return torch.baddbmm(base.unsqueeze(-1), self.P, q.unsqueeze(-1), alpha=alpha)[..., 0]
        torch.baddbmm(
            base.unsqueeze(-1), self.P, q.unsqueeze(-1), alpha=alpha, out=out.unsqueeze(-1)
        )
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"evaluations": self.evaluations, "queries": self.queries}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.evaluations = int(state["evaluations"])
        self.queries = int(state["queries"])


class SampledWinRates(WinRates):
    """Win rates estimated from duels: for each game and outcome y, ``opponents`` opponents
    y' ~ q and Bernoulli(P[y, y']) outcomes; the estimate is their mean (unbiased).

    Each call costs ``G · n · opponents`` preference queries (counted in ``queries``). Draws use
    the torch ``generator`` (on the games' device), so a seed fixes every duel.
    """

    def __init__(
        self, P: Any, opponents: int, generator: torch.Generator, device: Any = None
    ) -> None:
        super().__init__(P, device)
        if (
            isinstance(opponents, bool)
            or not isinstance(opponents, (int, np.integer))
            or opponents < 1
        ):
            raise InvalidInputError(f"opponents must be a positive integer, got {opponents!r}")
        if not isinstance(generator, torch.Generator):
            raise InvalidInputError(
                f"generator must be a torch.Generator, got {type(generator).__name__}"
            )
        if generator.device.type != self.P.device.type:
            raise InvalidInputError(
                f"generator is on {generator.device} but the games are on {self.P.device}"
            )
        self.opponents = int(opponents)
        self.generator = generator

    def _estimate(self, q: Tensor) -> Tensor:
        G, n, k = q.shape[0], self.n, self.opponents
        P = self.P.expand(G, n, n) if self.P.shape[0] != G else self.P
        opp = torch.multinomial(q, n * k, replacement=True, generator=self.generator)
        p = torch.gather(P, 2, opp.view(G, n, k))  # P[g, y, y'_k]
        u = torch.rand(p.shape, generator=self.generator, dtype=p.dtype, device=p.device)
        self.queries += G * n * k
        return (u < p).to(p.dtype).mean(-1)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.generator.set_state(state["generator"])


# ---------------------------------------------------------------------------------------------
# multiplicative weights self-play (SPO's no-regret core; SPPO's exact update)
# ---------------------------------------------------------------------------------------------
def _mwu_logstep(z: Tensor, W: WinRates, eta: float, ws: Workspace | None = None) -> Tensor:
    """In place: z ← z + η P(· ≻ softmax(z)) (logits up to a constant)."""
    return W.axpy(z, softmax_into(z, ws), eta, out=z)


def mwu_step(pi: Any, P: Any, eta: float) -> Tensor:
    """One self-play multiplicative-weights step π' ∝ π · exp(η P(· ≻ π)); batched ``[G, n]``.

    ``P`` is a preference matrix ``[G, n, n]`` / ``[n, n]`` or a :class:`WinRates` oracle (e.g.
    :class:`SampledWinRates` for the sampled version). This is also SPPO's exact update.
    """
    W = P if isinstance(P, WinRates) else WinRates(P)
    e = check_step(eta)
    x = as_policy(pi, W.n, W.device)
    squeeze = x.ndim == 1
    z = torch.log(x if not squeeze else x.unsqueeze(0)).clone()
    out = torch.softmax(_mwu_logstep(z, W, e), -1)
    return out[0] if squeeze else out


@dataclass
class SelfPlayResult:
    """Traces of :func:`selfplay_mwu` at the recorded iterations ``t`` (``[K]``).

    ``regret [K, G]`` is the external regret of the iterates against the true gains
    g_t = P π_t − ½ (so exploitability(avg) = regret / t exactly); ``avg [K, G, n]`` and
    ``last [K, G, n]`` the average and last iterates; ``queries`` the duels used.
    """

    t: np.ndarray
    regret: Tensor
    avg: Tensor
    last: Tensor
    evaluations: int
    queries: int


def selfplay_mwu(
    P: Any,
    steps: int,
    eta: float,
    *,
    schedule: str = "constant",
    pi0: Any = None,
    win_rates: WinRates | None = None,
    record_at: Any = None,
) -> SelfPlayResult:
    """Batched multiplicative-weights self-play on games ``P [G, n, n]`` for ``steps`` rounds.

    Round t plays π_t = softmax(z_t), observes win rates ĝ_t (exact, or from ``win_rates``,
    e.g. a :class:`SampledWinRates`) and updates z_{t+1} = z_t + η_t ĝ_t, with η_t = η
    (``schedule="constant"``) or η/√(t+1) (``"inv_sqrt"``). The regret is accounted on the
    true gains g_t = P π_t − ½: R_T = max_y Σ_t g_t,y − Σ_t ⟨π_t, g_t⟩, and since
    ⟨π_t, g_t⟩ = 0 in a skew-symmetric game, R_T / T = exploitability(π̄_T) (Swamy et al.).
    """
    exact = WinRates(P) if not isinstance(P, WinRates) else P
    W = win_rates if win_rates is not None else exact
    if W.P.shape != exact.P.shape:
        raise InvalidInputError("win_rates must answer for the same games as P")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InvalidInputError(f"steps must be a positive integer, got {steps!r}")
    e = check_step(eta)
    if schedule not in ("constant", "inv_sqrt"):
        raise InvalidInputError(f"schedule must be 'constant' or 'inv_sqrt', got {schedule!r}")
    G, n, dev = exact.games, exact.n, exact.device
    pi0_t = (
        torch.full((G, n), 1.0 / n, dtype=torch.float64, device=dev)
        if pi0 is None
        else as_policy(pi0, n, dev, "pi0").expand(G, n)
    )
    rec = sorted({int(t) for t in (record_at if record_at is not None else [steps])})
    if rec and (rec[0] < 1 or rec[-1] > steps):
        raise InvalidInputError(f"record_at must lie in [1, {steps}], got {rec[0]}..{rec[-1]}")
    z = torch.log(pi0_t).clone()
    S = torch.zeros(G, n, dtype=torch.float64, device=dev)  # Σ_t g_t (true gains)
    L = torch.zeros(G, dtype=torch.float64, device=dev)  # Σ_t ⟨π_t, g_t⟩
    total = torch.zeros(G, n, dtype=torch.float64, device=dev)  # Σ_t π_t
    ws = Workspace()
    regrets, avgs, lasts = [], [], []
    k = 0
    for t in range(1, steps + 1):
        pi = softmax_into(z, ws)
        total.add_(pi)
        g = exact._estimate(pi).sub_(0.5)
        S.add_(g)
        L.add_((pi * g).sum(-1))
        eta_t = e if schedule == "constant" else e / math.sqrt(t)
        if W is exact:
            z.add_(g, alpha=eta_t)  # the ½ shift does not change the policy
            W.evaluations += 1
        else:
            z.add_(W(pi), alpha=eta_t)
        if (t & 63) == 0:
            z.sub_(z.amax(-1, keepdim=True))
        if k < len(rec) and t == rec[k]:
            regrets.append(S.amax(-1) - L)
            avgs.append(total / t)
            lasts.append(pi.clone())
            k += 1
    return SelfPlayResult(
        t=np.asarray(rec, dtype=np.int64),
        regret=torch.stack(regrets),
        avg=torch.stack(avgs),
        last=torch.stack(lasts),
        evaluations=W.evaluations,
        queries=W.queries,
    )


# ---------------------------------------------------------------------------------------------
# the dueling-bandit learner (sampled duels, score-function step)
# ---------------------------------------------------------------------------------------------
@dataclass
class SPOBanditConfig:
    """Self-play policy gradient on a dueling bandit."""

    batch: int = option(16, "duels (preference queries) per iteration")
    lr: float = option(0.5, "policy-gradient step size on the logits")
    init_logit_scale: float = option(0.0, "std of the random initial logits (0 = uniform)")

    def validate(self) -> None:
        require(self.batch > 0, f"batch must be positive, got {self.batch}")
        require(self.lr > 0, f"lr must be positive, got {self.lr}")
        require(self.init_logit_scale >= 0, "init_logit_scale must be >= 0")


def win_rate_policy_gradient(
    pi: torch.Tensor, first: torch.Tensor, second: torch.Tensor, wins: torch.Tensor
) -> torch.Tensor:
    """Unbiased self-play gradient of P(π ≻ sg π) w.r.t. softmax logits from sampled duels.

    Each duel (i, j) with outcome o = 1[i ≻ j] rewards i with o − ½ and j with ½ − o (win rate
    against the other sample, centred), and ∇_θ log π(y) = e_y − π (SPO's score-function step).
    """
    n = pi.shape[-1]
    adv = wins.to(pi.dtype) - 0.5
    counts = torch.zeros(n, dtype=pi.dtype, device=pi.device)
    counts.index_add_(0, first, adv)
    counts.index_add_(0, second, -adv)
    m = 2 * first.shape[0]
    # Σ_k adv_k (e_{y_k} − π) / m, with Σ_k adv_k = 0 over both players, so the π term vanishes.
    return counts / m - pi * (counts.sum() / m)


@register_algo(
    "spo_bandit",
    description="SPO self-play policy gradient on a dueling bandit (win-rate rewards)",
    envs=("dueling",),
)
class SPOBandit(Learner):
    """SPO on a dueling bandit: duels between two samples of π, score-function update.

    The budget unit is preference queries (one duel = one query). Reports the exploitability
    max_y P(y ≻ π) − ½ of the last iterate and of the running average of iterates.
    """

    Config = SPOBanditConfig
    smoke = Smoke(
        env="dueling",
        steps=320,
        config={"batch": 32, "lr": 2.0, "init_logit_scale": 1.0},
        env_kwargs={"game": "dice"},
        source="tests/test_spo_bandit.py::test_spo_bandit_smoke_determinism_and_progress",
        family="spo",
    )
    default_steps = 20_000
    step_unit = "queries"

    @classmethod
    def check_env(cls, env: str, env_kwargs: dict[str, Any]) -> None:
        from prl.errors import ConfigError

        if env != "dueling":
            raise ConfigError(f"spo_bandit runs on the 'dueling' environment, not {env!r}")

    def __init__(
        self, config: SPOBanditConfig, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        super().__init__(config, env, env_kwargs, seed, device)
        from prl import envs

        self.env = envs.make(env, **env_kwargs)
        self.P = torch.as_tensor(self.env.unwrapped.P, dtype=torch.float64)
        n = self.P.shape[0]
        init = (
            self.rng.normal(0.0, config.init_logit_scale, size=n)
            if config.init_logit_scale
            else np.zeros(n)
        )
        self.logits = torch.as_tensor(init, dtype=torch.float64)
        self.avg = torch.zeros(n, dtype=torch.float64)
        self.iters = 0

    def _exploitability(self, pi: torch.Tensor) -> float:
        return float((self.P @ pi).max() - 0.5)

    def step(self) -> dict[str, float]:
        cfg = self.config
        pi = torch.softmax(self.logits, -1)
        p = pi.numpy()
        first = self.rng.choice(len(p), size=cfg.batch, p=p)
        second = self.rng.choice(len(p), size=cfg.batch, p=p)
        wins = self.rng.random(cfg.batch) < self.P.numpy()[first, second]
        g = win_rate_policy_gradient(
            pi, torch.as_tensor(first), torch.as_tensor(second), torch.as_tensor(wins)
        )
        self.logits = self.logits + cfg.lr * g
        self.iters += 1
        self.avg += (pi - self.avg) / self.iters
        self.steps_done += cfg.batch
        return {
            "iteration": self.iters,
            "exploitability_last": self._exploitability(pi),
            "exploitability_avg": self._exploitability(self.avg),
            "win_rate_batch": float(np.mean(wins)),
        }

    def policy(self) -> np.ndarray:
        """The averaged policy (the self-play output)."""
        return self.avg.numpy().copy()

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "logits": self.logits.clone(),
            "avg": self.avg.clone(),
            "iters": self.iters,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.logits = state["logits"].to(torch.float64)
        self.avg = state["avg"].to(torch.float64)
        self.iters = int(state["iters"])

    def close(self) -> None:
        self.env.close()
