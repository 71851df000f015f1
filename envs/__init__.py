"""prl environments: ``envs.make(name, **kwargs)``, ``envs.names()``; each is a gymnasium.Env.

Importing this package registers every environment in ``prl.registry.ENVS`` and in gymnasium's
registry under the ``prl/`` namespace (``gymnasium.make("prl/Chain-v0")``). To add an
environment, write a module in this package that calls ``prl.envs._registry.register_env(...)``
at import time and regenerate the name index (``python -m prl.catalog --write README.md``):
``prl.registry`` imports a module only when one of its names is asked for.
"""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium

from prl.envs._registry import register_env as _register
from prl.envs.bandits import ContextualLogLinearEnv, DuelingBanditEnv, KArmedBanditEnv
from prl.envs.delivery import DeliveryEnv
from prl.envs.tabular import ChainEnv, RandomMDPEnv, TabularEnv
from prl.errors import ConfigError, PrlError
from prl.registry import ENVS

# ---- tabular ------------------------------------------------------------------------------
_register(
    "random_mdp",
    RandomMDPEnv,
    "RandomMDP-v0",
    "random tabular MDP (Dirichlet transitions; S, A, gamma, seed, horizon)",
)
_register(
    "chain",
    ChainEnv,
    "Chain-v0",
    "Strens' n-chain: small reward at the start, large at the end (n, slip, horizon)",
)
_register(
    "delivery",
    DeliveryEnv,
    "Delivery-v0",
    "Knox et al.'s 10x10 delivery gridworld (goal, sheep, coins, roadblocks, mud)",
)

# ---- bandits ------------------------------------------------------------------------------
_register(
    "karmed",
    KArmedBanditEnv,
    "KArmed-v0",
    "K-armed bandit, Gaussian or Bernoulli rewards, one-step episodes",
)
_register(
    "contextual_loglinear",
    ContextualLogLinearEnv,
    "ContextualLogLinear-v0",
    "contextual bandit with features phi(x,a) and reward theta^T phi(x,a) + noise",
)
_register(
    "dueling",
    DuelingBanditEnv,
    "Dueling-v0",
    "dueling bandit over a preference matrix P: action (i, j), reward 1 if i wins",
)

# ---- every other module of the package registers itself on import: lazily, through the index
# of prl.registry (ENVS.get(name) imports only the module that registers ``name``) -------------


def names() -> list[str]:
    """Names of the registered environments, sorted."""
    return ENVS.names()


def make(name: str, **kwargs: Any) -> gymnasium.Env:
    """Build the environment registered as ``name`` with keyword arguments ``kwargs``.

    A name the lab does not register but gymnasium does (``Pendulum-v1``, ``CartPole-v1``, ...)
    is built by ``gymnasium.make(name, **kwargs)``; any other name raises UnknownNameError.
    """
    if name not in ENVS and name in gymnasium.registry:
        return _make_gymnasium(name, kwargs)
    factory = ENVS.get(name)  # unknown name → UnknownNameError
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        params = [p for p in inspect.signature(factory).parameters if p != "self"]
        raise ConfigError(
            f"bad arguments for environment {name!r}: {exc} (accepted: {', '.join(params)})"
        ) from None
    try:
        return factory(**kwargs)
    except PrlError:
        raise
    except (TypeError, ValueError, OverflowError, IndexError, KeyError, MemoryError) as exc:
        # a constructor choking on a wrongly typed or out-of-range argument
        what = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ConfigError(
            f"bad arguments for environment {name!r} ({what}): {exc}".splitlines()[0]
        ) from None


def _make_gymnasium(name: str, kwargs: dict[str, Any]) -> gymnasium.Env:
    """``gymnasium.make(name, **kwargs)``, its failures turned into one-line ConfigErrors."""
    try:
        return gymnasium.make(name, **kwargs)
    except PrlError:
        raise
    except Exception as exc:  # missing optional dependency, bad kwargs, ...
        what = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        msg = f"cannot build gymnasium environment {name!r} ({what}): {type(exc).__name__}: {exc}"
        raise ConfigError(msg.splitlines()[0]) from None


__all__ = [
    "ChainEnv",
    "ContextualLogLinearEnv",
    "DeliveryEnv",
    "DuelingBanditEnv",
    "KArmedBanditEnv",
    "RandomMDPEnv",
    "TabularEnv",
    "make",
    "names",
]
