"""Template for a new algorithm (docs/extending.md): copy to ``algos/<family>.py`` and rename.

TEMPLATE: sampled exponential-weights self-play on a dueling bandit. The policy is
π = softmax(θ); each step draws ``batch`` duels (i, j) with i, j ~ π, observes who wins from the
preference matrix P, and moves θ along the importance-weighted estimate of the win-rate
gradient: θ_k ← θ_k + η · mean_b 1[i_b = k] (w_b − ½) / π_k (Freund & Schapire's Hedge with
bandit feedback, Exp3-style). Everything the update uses comes from ``self.rng`` (saved by the
base class) and ``self.theta`` (saved below), so a resumed run continues exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from prl.config import option, require
from prl.errors import ConfigError
from prl.run import Learner, register_algo
from prl.smoke import Smoke

__all__ = ["TemplateConfig", "TemplateLearner", "exp_weights_step"]


def exp_weights_step(
    theta: np.ndarray, P: np.ndarray, eta: float, batch: int, rng: np.random.Generator
) -> np.ndarray:
    """One sampled exponential-weights step θ + η·ĝ on the win rate against π = softmax(θ)."""
    pi = np.exp(theta - theta.max())
    pi /= pi.sum()
    i = rng.choice(len(pi), size=batch, p=pi)
    j = rng.choice(len(pi), size=batch, p=pi)
    wins = (rng.random(batch) < P[i, j]).astype(np.float64)
    grad = np.bincount(i, weights=wins - 0.5, minlength=len(pi)) / (batch * pi)
    return theta + eta * grad


@dataclass
class TemplateConfig:
    """TEMPLATE: every field has a default and a one-line help (``prl run NAME --help``)."""

    eta: float = option(0.1, "step size η")
    batch: int = option(16, "duels per step")

    def validate(self) -> None:
        require(self.eta > 0, f"eta must be > 0, got {self.eta}")
        require(self.batch >= 1, f"batch must be >= 1, got {self.batch}")


@register_algo(
    "template_algo",  # TEMPLATE: the algorithm's name (prl run NAME)
    description="template: sampled exponential-weights self-play on a dueling bandit",
    envs=("dueling",),
)
class TemplateLearner(Learner):
    """Sampled exponential-weights self-play on a dueling bandit (the extending.md template)."""

    Config = TemplateConfig
    default_steps = 200
    step_unit = "iterations"
    # tiny settings (about a second): tests/test_matrix.py reads them through prl.smoke
    smoke = Smoke(
        env="dueling",
        steps=20,
        config={"batch": 8},
        env_kwargs={"game": "random", "K": 4, "seed": 2},
        source="tests/test_template_algo.py",  # TEMPLATE: the test holding these settings
    )

    @classmethod
    def check_env(cls, env: str, env_kwargs: dict[str, Any]) -> None:
        if env != "dueling":
            raise ConfigError(f"template_algo runs on the dueling env, got {env!r}")

    def __init__(
        self, config: TemplateConfig, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        super().__init__(config, env, env_kwargs, seed, device)
        from prl import envs

        self.env = envs.make(env, **env_kwargs)
        self.P = np.asarray(self.env.unwrapped.P, dtype=np.float64)
        self.theta = np.zeros(self.P.shape[0])

    def policy(self) -> np.ndarray:
        """π = softmax(θ)."""
        pi = np.exp(self.theta - self.theta.max())
        return pi / pi.sum()

    def step(self) -> dict[str, float]:
        c = self.config
        self.theta = exp_weights_step(self.theta, self.P, c.eta, c.batch, self.rng)
        self.steps_done += 1
        pi = self.policy()
        return {"exploitability": float((self.P @ pi).max() - 0.5), "entropy": _entropy(pi)}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "theta": torch.as_tensor(self.theta)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.theta = state["theta"].numpy().astype(np.float64)

    def close(self) -> None:
        self.env.close()


def _entropy(pi: np.ndarray) -> float:
    p = pi[pi > 0]
    return float(-(p * np.log(p)).sum())
