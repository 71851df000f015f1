"""SB3-shaped front doors to the lab's preference learners: ``RLHF``, ``SPO``, ``HERON``, ``CMORL``.

Each is a thin facade over the registered learner (``rlhf``, ``spo``, ``heron``, ``cmorl``) with
stable-baselines3's surface::

    from prl.algos.sb3_api import RLHF

    model = RLHF("MlpPolicy", "PendulumFactored-v1", query_budget=200, seed=0)
    model.learn(total_timesteps=20_000)
    action, _ = model.predict(obs, deterministic=True)
    model.save("rlhf_pendulum")  # rlhf_pendulum.zip
    model = RLHF.load("rlhf_pendulum")

- ``env``: a registry name, any gymnasium id, or a gymnasium env made by ``gymnasium.make`` (its
  ``spec`` id and keyword arguments are used: the learners build their own vectorized copies).
- Keyword arguments are the learner's config fields (``prl list`` / ``docs/glossary.md``); SB3's
  ``learning_rate`` and ``policy_kwargs={"net_arch": [...]}`` are accepted for ``lr``/``hidden``.
- ``learn(total_timesteps)`` advances the learner by that many environment steps (whole
  iterations, so a little more), exactly as ``prl run`` would with the same seed.
- ``save`` writes one ``.zip``: for the PPO-based learners it *is* SB3's file of the inner PPO
  (``stable_baselines3.PPO.load`` reads it), plus two entries SB3 ignores — the whole learner
  state (``prl_learner.pt``, tensors only: reward model, labels, query budget, generators) and
  its settings (``prl_meta.json``) — from which ``Cls.load`` rebuilds the learner exactly.
- ``.model`` is the inner SB3 model (``None`` for C-MORL, which is not SB3-based).

``CMORL`` follows morl-baselines' convention for multi-policy agents: ``eval(obs, w)`` acts with
the archived policy that is best for the preference weights ``w``; ``predict(obs, w=...)`` too.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, ClassVar

from prl.config import build_config, config_to_dict
from prl.errors import InvalidInputError
from prl.registry import ALGOS, ENVS, load_plugins
from prl.run import Learner
from prl.utils import atomic_path, resolve_device, seed_everything

__all__ = ["CMORL", "HERON", "RLHF", "SPO", "SB3Facade"]

_STATE_ENTRY = "prl_learner.pt"
_META_ENTRY = "prl_meta.json"


def _env_name(env: Any, env_kwargs: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """(registry name or gymnasium id, kwargs) of ``env`` (a name, or an env made by make)."""
    kwargs = dict(env_kwargs or {})
    if isinstance(env, str):
        return env, kwargs
    spec = getattr(getattr(env, "unwrapped", env), "spec", None) or getattr(env, "spec", None)
    if spec is None or not getattr(spec, "id", None):
        raise InvalidInputError(
            f"env must be an environment name or an env built by gymnasium.make (with a spec), "
            f"got {type(env).__name__}"
        )
    name = spec.id
    for entry in ENVS.entries():  # the lab's own ids map back to their registry names
        if entry.meta.get("gym_id") == name:
            name = entry.name
            break
    return name, {**dict(spec.kwargs or {}), **kwargs}


class SB3Facade:
    """SB3's constructor/learn/predict/save/load around a registered :class:`prl.run.Learner`."""

    algo: ClassVar[str]

    def __init__(
        self,
        policy: str,
        env: Any,
        *,
        seed: int = 0,
        device: Any = "auto",
        env_kwargs: dict[str, Any] | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        learning_rate: float | None = None,
        verbose: int = 0,
        **config: Any,
    ) -> None:
        if policy != "MlpPolicy":
            raise InvalidInputError(
                f"{type(self).__name__} supports policy='MlpPolicy', got {policy!r}"
            )
        load_plugins()
        cls = ALGOS.get(self.algo)
        arch = (policy_kwargs or {}).get("net_arch")
        hidden = None if arch is None else [int(h) for h in arch]
        for sb3_name, value, field in (
            ("learning_rate", learning_rate, "lr"),
            ("policy_kwargs['net_arch']", hidden, "hidden"),
        ):
            if value is None:
                continue
            if field in config and config[field] != value:
                raise InvalidInputError(f"{sb3_name} and {field} give different values")
            config[field] = value
        extra = set(policy_kwargs or {}) - {"net_arch"}
        if extra:
            raise InvalidInputError(f"policy_kwargs supports only net_arch, got {sorted(extra)}")
        name, kw = _env_name(env, env_kwargs)
        self._setup(cls, name, kw, int(seed), device, dict(config))
        self.verbose = int(verbose)

    def _setup(
        self,
        cls: type[Learner],
        env: str,
        env_kwargs: dict[str, Any],
        seed: int,
        device: Any,
        config: dict[str, Any],
    ) -> None:
        from prl.run import _validate_env

        _validate_env(env, cls)
        cfg = build_config(cls.Config, config)
        cls.check_env(env, env_kwargs)
        dev = resolve_device(device)
        seed_everything(seed)  # as `prl run` does before building its learner
        self.learner = cls(cfg, env, env_kwargs, seed, dev)
        self.env_name, self.env_kwargs, self.seed, self.device = env, env_kwargs, seed, dev
        self.num_timesteps = int(self.learner.steps_done)

    # ---- SB3's surface --------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The inner SB3 model (None when the learner is not SB3-based)."""
        from prl.common.sb3 import SB3Learner

        return self.learner.model if isinstance(self.learner, SB3Learner) else None

    @property
    def observation_space(self) -> Any:
        return self._space("observation_space")

    @property
    def action_space(self) -> Any:
        return self._space("action_space")

    def _space(self, which: str) -> Any:
        if self.model is not None:
            return getattr(self.model, which)
        return getattr(self.learner.envs[0], which)

    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        progress_bar: bool = False,
        reset_num_timesteps: bool = True,
    ) -> SB3Facade:
        """Train for ``total_timesteps`` more environment steps (whole learner steps)."""
        if isinstance(total_timesteps, bool) or int(total_timesteps) <= 0:
            raise InvalidInputError(f"total_timesteps must be positive, got {total_timesteps!r}")
        lr = self.learner
        if callback is not None:
            if not hasattr(lr, "callback"):
                raise InvalidInputError(f"{type(self).__name__} takes no SB3 callback")
            lr.callback = callback
        target = int(lr.steps_done) + int(total_timesteps)
        lr.total_steps = max(int(lr.total_steps or 0), target)
        from tqdm.auto import tqdm

        with tqdm(total=int(total_timesteps), disable=not progress_bar, leave=False) as bar:
            while lr.steps_done < target:
                before = lr.steps_done
                lr.step()
                bar.update(min(lr.steps_done, target) - before)
        self.num_timesteps = int(lr.steps_done)
        return self

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[Any, Any]:
        """SB3's ``predict``: ``(actions, state)`` (stochastic unless ``deterministic``, as SB3)."""
        return self.learner.predict(
            observation, state=state, episode_start=episode_start, deterministic=deterministic
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """One ``.zip``: SB3's file of the inner model (if any) plus the whole learner state."""
        import torch

        path = Path(path)
        if path.suffix != ".zip":
            path = path.with_name(path.name + ".zip")
        buf = io.BytesIO()
        if self.model is not None:
            self.model.save(buf)
        meta = {
            "facade": type(self).__name__,
            "algo": self.algo,
            "env": self.env_name,
            "env_kwargs": self.env_kwargs,
            "seed": self.seed,
            "config": config_to_dict(self.learner.config),
            "total_steps": self.learner.total_steps,
        }
        state = io.BytesIO()
        torch.save(self.learner.state_dict(), state)
        mode = "a" if self.model is not None else "w"
        with zipfile.ZipFile(buf, mode) as z:
            z.writestr(_META_ENTRY, json.dumps(meta, sort_keys=True))
            z.writestr(_STATE_ENTRY, state.getvalue())
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], env: Any = None, device: Any = "auto", **kwargs: Any
    ) -> SB3Facade:
        """Rebuild a saved facade (the learner's state restored: ``learn`` continues exactly)."""
        import torch

        path = Path(path)
        if not path.exists() and path.with_name(path.name + ".zip").exists():
            path = path.with_name(path.name + ".zip")
        try:
            with zipfile.ZipFile(path) as z:
                meta = json.loads(z.read(_META_ENTRY))
                raw = z.read(_STATE_ENTRY)
        except (OSError, KeyError, zipfile.BadZipFile, ValueError) as exc:
            raise InvalidInputError(
                f"{path} is not a saved {cls.__name__} ({exc})".splitlines()[0]
            ) from None
        if meta.get("algo") != cls.algo:
            raise InvalidInputError(f"{path} holds a {meta.get('facade')}, not a {cls.__name__}")
        name, kw = meta["env"], meta["env_kwargs"]
        if env is not None:
            name, kw = _env_name(env, None)
        if kwargs:
            raise InvalidInputError(f"unknown load arguments {sorted(kwargs)}")
        self = cls.__new__(cls)
        load_plugins()
        self._setup(ALGOS.get(cls.algo), name, kw, int(meta["seed"]), device, meta["config"])
        self.learner.total_steps = meta.get("total_steps")
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        self.learner.load_state_dict(state)
        self.num_timesteps = int(self.learner.steps_done)
        self.verbose = 0
        return self

    def close(self) -> None:
        """Release the learner's environments."""
        self.learner.close()


class RLHF(SB3Facade):
    """Reward-model RLHF (``rlhf``): BT reward model on trajectory preferences + SB3 PPO."""

    algo = "rlhf"


class SPO(SB3Facade):
    """Deep SPO (``spo``): self-play win rates of whole trajectories + SB3 PPO."""

    algo = "spo"


class HERON(SB3Facade):
    """HERON (``heron``): a reward model fitted to a factor-ranking tree's labels + SB3 PPO."""

    algo = "heron"


class CMORL(SB3Facade):
    """C-MORL (``cmorl``): a Pareto set of PPO policies; ``eval(obs, w)`` as morl-baselines."""

    algo = "cmorl"

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
        w: Any = None,
    ) -> tuple[Any, Any]:
        """``(actions, state)`` of the archived policy best for weights ``w`` (None: equal)."""
        return self.learner.predict(
            observation, state=state, episode_start=episode_start, deterministic=deterministic, w=w
        )

    def eval(self, obs: Any, w: Any = None) -> Any:
        """morl-baselines' ``eval(obs, w)``: the greedy action for one observation and weights."""
        return self.learner.eval(obs, w)

    def front(self) -> Any:
        """The Pareto front [n, K] of the archived policies' return vectors."""
        return self.learner.front()
