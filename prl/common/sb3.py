"""One base for the learners that wrap a stable-baselines3 model: checkpoint, global RNG and
environment-state capture, and ``predict``.

SB3 samples actions from torch's global generator and shuffles minibatches with numpy's global
one, so an exact resume stores both (:func:`global_rng_state`) besides the model's tensors
(:meth:`SB3Learner.sb3_state`: every ``state_dict`` SB3 itself would save — policy, optimizers,
target networks) and, mid-rollout, the last observation and episode starts
(:meth:`SB3Learner.rollout_state`). Families add what only they have (monitors, replay buffers,
environment states) by extending :meth:`state_dict` / :meth:`load_state_dict`.
Everything is stored as tensors, numbers, strings or lists (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prl.errors import InvalidInputError
from prl.run import Learner
from prl.utils import atomic_path

#: SB3's own save format in a run directory, beside checkpoint.pt
MODEL_FILE = "model.zip"

__all__ = [
    "MODEL_FILE",
    "RunDirLoad",
    "SB3Learner",
    "foreach_adam",
    "global_rng_state",
    "np_global_rng_state",
    "set_global_rng_state",
    "set_np_global_rng_state",
]


def model_zip_path(path: Any) -> Any:
    """``path``, or ``path/model.zip`` for a run directory; a file that is not a zip (a prl
    ``checkpoint.pt``) raises one clear line instead of SB3's "No data found"."""
    if not isinstance(path, (str, os.PathLike)):
        return path  # a file-like object: SB3 reads it
    p = Path(path)
    if p.is_dir():
        p = p / MODEL_FILE
        if not p.is_file():
            raise InvalidInputError(f"{path} holds no {MODEL_FILE} (the run has not finished?)")
    if p.is_file() and not _is_sb3_zip(p):
        raise InvalidInputError(
            f"{p} is not an SB3 model .zip (a prl checkpoint?): load the run's {MODEL_FILE} "
            "or call prl.load(run_dir)"
        )
    return p


def _is_sb3_zip(path: Path) -> bool:
    """Whether ``path`` is a zip archive holding SB3's ``data`` entry (torch.save files are zips
    too, without it)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return "data" in z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def foreach_adam(*optimizers: torch.optim.Optimizer) -> None:
    """Switch ``optimizers`` to torch's multi-tensor (``foreach``) kernels, as torch already does
    on a GPU: the same Adam update (Kingma & Ba 2015, Alg. 1), bit for bit, in fewer kernel calls.

    An optimizer built with ``fused=True`` is left as it is (torch allows one of the two).
    """
    for opt in optimizers:
        for group in opt.param_groups:
            if not group.get("fused"):
                group["foreach"] = True


class RunDirLoad:
    """Mixin for SB3 algorithm classes: ``Cls.load`` also takes a run directory (its
    ``model.zip``) and rejects a prl ``checkpoint.pt`` with a clear message."""

    @classmethod
    def load(cls, path: Any, *args: Any, **kwargs: Any) -> Any:
        """SB3's ``load`` of ``path`` (a ``.zip``, or a run directory holding ``model.zip``)."""
        return super().load(model_zip_path(path), *args, **kwargs)  # type: ignore[misc]


def np_global_rng_state() -> str:
    """numpy's global (legacy) generator state as a JSON string."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (SB3 uses it)
    return json.dumps([name, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)])


def set_np_global_rng_state(text: str) -> None:
    """Restore :func:`np_global_rng_state`."""
    name, keys, pos, has_gauss, cached = json.loads(text)
    np.random.set_state((name, np.asarray(keys, np.uint32), pos, has_gauss, cached))  # noqa: NPY002


def global_rng_state(device: torch.device | str = "cpu") -> dict[str, Any]:
    """torch's CPU (and, on CUDA, the device's) generator and numpy's global generator."""
    device = torch.device(device)
    return {
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "np_global_rng": np_global_rng_state(),
    }


def set_global_rng_state(state: dict[str, Any], device: torch.device | str = "cpu") -> None:
    """Restore :func:`global_rng_state` (the CUDA part only on a CUDA device)."""
    device = torch.device(device)
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    set_np_global_rng_state(state["np_global_rng"])


class SB3Learner(Learner):
    """A :class:`prl.run.Learner` around an SB3 model ``self.model`` (built by the subclass).

    ``state_dict`` holds the model's tensors (:meth:`sb3_state`), its step counters and the
    global generators; subclasses add their own pieces around ``super()``.
    """

    model: Any
    step_unit = "env steps"
    #: any gymnasium id is accepted as ``--env`` (``prl.envs.make`` falls back to gymnasium.make)
    gymnasium_ids = True

    # ---- acting ----------------------------------------------------------------------------------
    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[Any, Any]:
        """The SB3 model's ``predict``: ``(actions, state)`` (so ``evaluate_policy`` takes it)."""
        return self.model.predict(
            observation, state=state, episode_start=episode_start, deterministic=deterministic
        )

    # ---- SB3's own format ------------------------------------------------------------------------
    def export(self, run_dir: Path) -> None:
        """Write ``model.zip`` (SB3's ``model.save``) into ``run_dir``, atomically.

        It loads with the model class's own ``load`` (``PPO.load``, ``SAC.load``,
        ``MDPOOnPolicy.load``, ...); ``prl.load(run_dir)`` rebuilds the same model from
        ``checkpoint.pt`` without unpickling anything.
        """
        with atomic_path(Path(run_dir) / MODEL_FILE) as tmp, tmp.open("wb") as f:
            self.model.save(f)

    # ---- logging through SB3's logger (prl run --tensorboard) ----------------------------------
    def log_to(self, log_dir: Path) -> bool:
        """Give the SB3 model SB3's own logger writing CSV (``progress.csv``) and TensorBoard
        events into ``log_dir`` (``configure(log_dir, ["csv", "tensorboard"])``); it survives
        the learner's chunked ``learn`` calls (a custom logger is kept by ``_setup_learn``)."""
        from stable_baselines3.common.logger import configure

        self._sb3_logger = configure(str(log_dir), ["csv", "tensorboard"])
        self.model.set_logger(self._sb3_logger)
        return True

    def dump_log(self, step: int) -> None:
        """Write what SB3 recorded during the last step (e.g. ``train/*`` of the last update)."""
        logger = getattr(self, "_sb3_logger", None)
        if logger is not None and logger.name_to_value:
            logger.dump(step=int(step))

    def close_log(self) -> None:
        """Close the logger of :meth:`log_to` (its files are flushed)."""
        logger = getattr(self, "_sb3_logger", None)
        if logger is not None:
            logger.close()
            self._sb3_logger = None

    # ---- checkpoint pieces -----------------------------------------------------------------------
    def sb3_torch_names(self) -> list[str]:
        """Attribute paths of the model's modules and optimizers to checkpoint (SB3's own list)."""
        names, _ = self.model._get_torch_save_params()
        return list(names)

    def sb3_state(self) -> dict[str, Any]:
        """State dicts of :meth:`sb3_torch_names`, plus the model's step and update counters."""
        from stable_baselines3.common.save_util import recursive_getattr

        m = self.model
        return {
            "sb3": {n: recursive_getattr(m, n).state_dict() for n in self.sb3_torch_names()},
            "num_timesteps": int(m.num_timesteps),
            "n_updates": int(m._n_updates),
        }

    def load_sb3_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`sb3_state`."""
        from stable_baselines3.common.save_util import recursive_getattr

        for name, sd in state["sb3"].items():
            recursive_getattr(self.model, name).load_state_dict(sd)
        self.model.num_timesteps = int(state["num_timesteps"])
        self.model._n_updates = int(state["n_updates"])

    def rollout_state(self) -> dict[str, Any]:
        """The model's last observation and episode starts (None before the first rollout)."""
        m = self.model
        if m._last_obs is None:
            return {"last_obs": None, "last_episode_starts": None}
        return {
            "last_obs": torch.as_tensor(np.asarray(m._last_obs)),
            "last_episode_starts": np.asarray(m._last_episode_starts).astype(bool).tolist(),
        }

    def load_rollout_state(self, state: dict[str, Any], dtype: Any = None) -> None:
        """Restore :meth:`rollout_state` (``dtype``: the observation dtype, if it must be cast)."""
        if state.get("last_obs") is None:
            return
        obs = state["last_obs"].numpy()
        self.model._last_obs = obs.astype(dtype) if dtype is not None else obs
        self.model._last_episode_starts = np.asarray(state["last_episode_starts"], dtype=bool)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            **self.sb3_state(),
            **global_rng_state(self.model.device),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.load_sb3_state(state)
        if "torch_rng" in state:
            set_global_rng_state(state, self.model.device)

    def close(self) -> None:
        env = getattr(self.model, "env", None)
        if env is not None:
            env.close()
