"""``prl.load(run_dir)``: the trained model of a run directory, rebuilt from its own files.

The learner is built again from ``config.json`` (algorithm, environment, seed, config) and its
state restored from ``checkpoint.pt`` with the safe loader (``torch.load(weights_only=True)``:
no stored code runs). For an SB3-based learner the result is its SB3 model (a ``PPO``, ``SAC``
or subclass, ready for ``predict``, ``evaluate_policy``, ``save`` or more ``learn``); for the
others it is the :class:`prl.run.Learner` itself (``predict`` returns SB3's ``(action, state)``).
The run's ``model.zip`` (SB3's ``model.save``) holds the same SB3 model for SB3's own ``load``.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from prl.errors import InvalidInputError

__all__ = ["load", "load_learner"]


def load_learner(run_dir: str | os.PathLike[str], *, device: Any = "cpu") -> Any:
    """The :class:`prl.run.Learner` of ``run_dir`` with its last checkpoint restored.

    The caller's global random state (python, numpy, torch) is left as it was.
    """
    import torch

    from prl.config import build_config
    from prl.registry import ALGOS, load_plugins
    from prl.run import CHECKPOINT, load_checkpoint
    from prl.utils import resolve_device, seed_everything

    rdir = Path(run_dir)
    cfg_path, ckpt = rdir / "config.json", rdir / CHECKPOINT
    if not cfg_path.is_file():
        raise InvalidInputError(f"{rdir} is not a run directory (no config.json)")
    if not ckpt.is_file():
        raise InvalidInputError(f"{rdir} holds no {CHECKPOINT} (the run saved no checkpoint yet)")
    try:
        meta = json.loads(cfg_path.read_text())
        algo, env, seed = meta["algo"], meta["env"], int(meta["seed"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{cfg_path} is not a run config: {exc}".splitlines()[0]) from None
    load_plugins()
    cls = ALGOS.get(algo)
    cfg = build_config(cls.Config, meta.get("config") or {})
    env_kwargs = dict(meta.get("env_kwargs") or {})
    state = load_checkpoint(ckpt)
    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())  # noqa: NPY002
    try:
        seed_everything(seed)  # as the run did before building its learner
        learner = cls(cfg, env, env_kwargs, seed, resolve_device(device))
        learner.total_steps = int(meta.get("steps") or 0) or None
        learner.load_state_dict(state["learner"])
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])  # noqa: NPY002
        torch.set_rng_state(saved[2])
    return learner


def load(run_dir: str | os.PathLike[str], *, device: Any = "cpu") -> Any:
    """The trained model of ``run_dir``: the SB3 model of an SB3-based learner, else the Learner.

    ``model.predict(obs)`` returns SB3's ``(action, state)`` either way, so
    ``stable_baselines3.common.evaluation.evaluate_policy(prl.load(run_dir), env)`` works.
    """
    from prl.common.sb3 import SB3Learner

    learner = load_learner(run_dir, device=device)
    return learner.model if isinstance(learner, SB3Learner) else learner
