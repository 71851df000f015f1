"""SB3's ``predict`` for learners that are not SB3 models (the default of ``Learner.predict``).

A learner of a preference game (the Nash family, the DPO/IPO baselines, SPO's bandit, GPM) ends
with a policy π over the K arms of the dueling environment, whose action is a pair (i, j) of
arms: in self-play both are drawn from π (deterministic: both the mode of π). Learners with
a policy over environment states override ``predict`` themselves (SB3 learners, the offline
learners, C-MORL).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prl.errors import InvalidInputError

__all__ = ["arm_policy", "predict_from_policy"]


def arm_policy(learner: Any) -> np.ndarray | None:
    """The learner's policy over arms as float64 probabilities [K] (None if it has none)."""
    pol = getattr(learner, "policy", None)
    if pol is None:
        return None
    p = pol() if callable(pol) and not hasattr(pol, "shape") else pol
    if hasattr(p, "detach"):
        p = p.detach().cpu().numpy()
    try:
        p = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if p.ndim == 0 or p.size == 0:
        return None
    p = p.reshape(-1, p.shape[-1])[0]  # the first game of a batch of games
    if not np.all(np.isfinite(p)) or np.any(p < 0) or abs(p.sum() - 1.0) > 1e-6:
        return None
    return p / p.sum()


def predict_from_policy(learner: Any, observation: Any, deterministic: bool = True) -> np.ndarray:
    """Self-play action pairs [n, 2] (one per observation) from the learner's policy over arms.

    A single observation (a scalar: the dueling environment's only state) gives one pair [2].
    """
    p = arm_policy(learner)
    if p is None:
        raise InvalidInputError(
            f"{type(learner).__name__} has no policy that acts in an environment (predict needs "
            "a policy over the environment's actions)"
        )
    obs = np.asarray(observation)
    n = 1 if obs.ndim == 0 else int(obs.shape[0])
    if deterministic:
        pairs = np.full((n, 2), int(np.argmax(p)), dtype=np.int64)
    else:
        rng = getattr(learner, "_predict_rng", None)
        if rng is None:  # its own stream: acting never moves the training generator
            rng = np.random.default_rng([int(getattr(learner, "seed", 0)), 0x5B3])
            learner._predict_rng = rng
        pairs = rng.choice(len(p), size=(n, 2), p=p).astype(np.int64)
    return pairs[0] if obs.ndim == 0 else pairs
