"""One-step bandits: K-armed, log-linear contextual, and dueling over a preference matrix."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from prl.envs._registry import accepted_render_mode
from prl.errors import ConfigError, InvalidInputError

# rock-paper-scissors: P[i, j] = probability that i beats j (rock 0 < paper 1 < scissors 2 < rock)
RPS = np.array([[0.5, 0.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.5]])


def _positive_int(x: Any, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {x!r}")
    return int(x)


def _check_render_mode(env: gym.Env, render_mode: str | None) -> str | None:
    render_mode = accepted_render_mode(
        render_mode, env.metadata["render_modes"], type(env).__name__
    )
    return render_mode


def validate_preference_matrix(P: Any, atol: float = 1e-9) -> np.ndarray:
    """Check P is [K,K], finite, in [0, 1] with P + Pᵀ = 1 (within ``atol``); return float64."""
    arr = np.asarray(P.detach().cpu() if hasattr(P, "detach") else P, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 1:
        raise InvalidInputError(f"preference matrix must be square [K,K], got shape {arr.shape}")
    try:
        from prl.games import validate_preference_matrix as _validate
    except ImportError:  # prl.games unavailable: same checks here
        _validate = None
    if _validate is not None:
        return np.clip(np.asarray(_validate(arr, atol=atol), dtype=np.float64), 0.0, 1.0)
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError("preference matrix contains NaN or inf")
    if np.any(arr < 0) or np.any(arr > 1):
        raise InvalidInputError(
            f"preference matrix entries must be in [0, 1], got range [{arr.min()}, {arr.max()}]"
        )
    dev = float(np.abs(arr + arr.T - 1.0).max())
    if dev > atol:
        raise InvalidInputError(
            f"preference matrix must satisfy P + Pᵀ = 1, max deviation {dev:.3g}"
        )
    return arr


class _OneStepEnv(gym.Env):
    """Shared reset/render plumbing of the one-step bandits (episode = one pull)."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012

    _last: str = ""

    def render(self) -> str | None:
        """The last pull as one line of text (``"ansi"`` mode)."""
        if self.render_mode != "ansi":
            return None
        return (self._last or "no pull yet") + "\n"


class KArmedBanditEnv(_OneStepEnv):
    """K-armed bandit with Gaussian or Bernoulli rewards; one-step episodes, observation 0."""

    def __init__(
        self,
        K: int = 10,
        means: Any | None = None,
        reward: str = "gaussian",
        noise_std: float = 1.0,
        seed: int = 0,
        render_mode: str | None = None,
    ):
        if reward not in ("gaussian", "bernoulli"):
            raise InvalidInputError(f"reward must be 'gaussian' or 'bernoulli', got {reward!r}")
        if means is None:
            K = _positive_int(K, "K")
            rng = np.random.default_rng(seed)
            mu = rng.normal(size=K) if reward == "gaussian" else rng.uniform(size=K)
        else:
            mu = np.asarray(means, dtype=np.float64).reshape(-1)
            if mu.size < 1 or not np.all(np.isfinite(mu)):
                raise InvalidInputError(f"means must be a non-empty finite vector, got {means!r}")
            if reward == "bernoulli" and (np.any(mu < 0) or np.any(mu > 1)):
                raise InvalidInputError("Bernoulli means must lie in [0, 1]")
        if not (np.isfinite(noise_std) and noise_std >= 0):
            raise InvalidInputError(f"noise_std must be finite and ≥ 0, got {noise_std!r}")
        self.means = mu
        self.K = int(mu.size)
        self.best_arm = int(np.argmax(mu))
        self.reward_type = reward
        self.noise_std = float(noise_std)
        self.render_mode = _check_render_mode(self, render_mode)
        self.observation_space = spaces.Discrete(1)
        self.action_space = spaces.Discrete(self.K)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Start a one-pull episode (observation 0)."""
        super().reset(seed=seed)
        return 0, {}

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict[str, Any]]:
        """Pull arm ``action``; the episode terminates."""
        a = int(action)
        if not (0 <= a < self.K):
            raise InvalidInputError(f"action must be an arm in [0, {self.K}), got {action!r}")
        if self.reward_type == "gaussian":
            r = float(self.means[a] + self.noise_std * self.np_random.standard_normal())
        else:
            r = float(self.np_random.random() < self.means[a])
        self._last = f"arm {a} → reward {r:.4g}"
        return 0, r, True, False, {"mean": float(self.means[a])}


class ContextualLogLinearEnv(_OneStepEnv):
    """Contextual bandit: x ~ N(0, I), φ(x,a) = tanh(W_a x + b_a), reward θᵀφ(x,a) + noise.

    The observation is the K×d feature matrix (flattened when ``flatten``); ``info["context"]``
    holds x. Log-linear policies π(a|x) ∝ exp(wᵀφ(x,a)) are the natural policy class.
    """

    def __init__(
        self,
        K: int = 5,
        d: int = 4,
        theta: Any | None = None,
        noise_std: float = 0.1,
        seed: int = 0,
        flatten: bool = True,
        render_mode: str | None = None,
    ):
        self.K = _positive_int(K, "K")
        self.d = _positive_int(d, "d")
        rng = np.random.default_rng(seed)
        self.W = rng.normal(size=(self.K, self.d, self.d)) / np.sqrt(self.d)
        self.b = rng.normal(size=(self.K, self.d)) * 0.5
        if theta is None:
            th = rng.normal(size=self.d)
        else:
            th = np.asarray(theta, dtype=np.float64).reshape(-1)
            if th.shape != (self.d,) or not np.all(np.isfinite(th)):
                raise InvalidInputError(
                    f"theta must be {self.d} finite numbers, got shape {th.shape}"
                )
        if not (np.isfinite(noise_std) and noise_std >= 0):
            raise InvalidInputError(f"noise_std must be finite and ≥ 0, got {noise_std!r}")
        self.theta = th
        self.noise_std = float(noise_std)
        self.flatten = bool(flatten)
        self.render_mode = _check_render_mode(self, render_mode)
        shape = (self.K * self.d,) if self.flatten else (self.K, self.d)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=shape, dtype=np.float64)
        self.action_space = spaces.Discrete(self.K)
        self.context = np.zeros(self.d)

    def features(self, x: Any) -> np.ndarray:
        """φ(x, ·) [..., K, d] for contexts x [..., d]."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1:] != (self.d,):
            raise InvalidInputError(f"contexts must have shape [..., {self.d}], got {x.shape}")
        return np.tanh(np.einsum("kij,...j->...ki", self.W, x) + self.b)

    def expected_rewards(self, x: Any) -> np.ndarray:
        """θᵀφ(x, a) [..., K]."""
        return self.features(x) @ self.theta

    def sample_contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n contexts x ~ N(0, I_d)."""
        return rng.standard_normal((int(n), self.d))

    def _obs(self) -> np.ndarray:
        phi = self.features(self.context)
        return phi.reshape(-1) if self.flatten else phi

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw a fresh context; observe its feature matrix."""
        super().reset(seed=seed)
        self.context = self.np_random.standard_normal(self.d)
        return self._obs(), {"context": self.context.copy()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Choose action ``action``: reward θᵀφ(x,a) + N(0, noise_std²); the episode terminates."""
        a = int(action)
        if not (0 <= a < self.K):
            raise InvalidInputError(f"action must be in [0, {self.K}), got {action!r}")
        mean = float(self.expected_rewards(self.context)[a])
        r = mean + self.noise_std * float(self.np_random.standard_normal())
        self._last = f"action {a} → reward {r:.4g} (mean {mean:.4g})"
        return self._obs(), r, True, False, {"context": self.context.copy(), "mean": mean}


def _resolve_game(game: str, K: int | None, seed: int, game_kwargs: dict[str, Any]) -> np.ndarray:
    """P for a game named in ``prl.games.make_game`` (imported lazily); K → its ``n``."""
    try:
        from prl.games import make_game
    except ImportError as exc:
        if game == "rps" and K in (None, 3) and not game_kwargs:
            return RPS.copy()
        raise ConfigError(
            f"game={game!r} needs prl.games.make_game, which is not available"
        ) from exc
    return np.asarray(make_game(game, n=K, rng=np.random.default_rng(seed), **game_kwargs))


class DuelingBanditEnv(_OneStepEnv):
    """Dueling bandit over a preference matrix P: action (i, j), reward 1 if i wins (prob P[i,j]).

    ``P`` is an explicit [K,K] matrix, or ``game`` names a generator of ``prl.games``
    (``"rps"``, ``"dice"``, ``"random"``, ...; ``K`` and ``seed`` become its ``n`` and ``rng``);
    with neither, rock-paper-scissors.
    """

    def __init__(
        self,
        P: Any | None = None,
        game: str | None = None,
        K: int | None = None,
        seed: int = 0,
        game_kwargs: dict[str, Any] | None = None,
        render_mode: str | None = None,
    ):
        if P is not None and game is not None:
            raise ConfigError("give either P or game, not both")
        if P is None:
            P = RPS if game is None else _resolve_game(game, K, int(seed), dict(game_kwargs or {}))
        self.P = validate_preference_matrix(P)
        self.K = int(self.P.shape[0])
        if K is not None and _positive_int(K, "K") != self.K:
            raise InvalidInputError(f"K={K} does not match the {self.K}×{self.K} matrix P")
        self.render_mode = _check_render_mode(self, render_mode)
        self.observation_space = spaces.Discrete(1)
        self.action_space = spaces.MultiDiscrete([self.K, self.K])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Start a one-duel episode (observation 0)."""
        super().reset(seed=seed)
        return 0, {}

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict[str, Any]]:
        """Duel i against j: reward 1.0 if i wins (probability P[i,j]) else 0.0."""
        pair = np.asarray(action).reshape(-1)
        if pair.shape != (2,) or np.any(pair < 0) or np.any(pair >= self.K):
            raise InvalidInputError(
                f"action must be a pair (i, j) in [0, {self.K})², got {action!r}"
            )
        i, j = int(pair[0]), int(pair[1])
        win = bool(self.np_random.random() < self.P[i, j])
        self._last = f"duel {i} vs {j} → winner {i if win else j}"
        info = {"winner": i if win else j, "p_win": float(self.P[i, j])}
        return 0, float(win), True, False, info
