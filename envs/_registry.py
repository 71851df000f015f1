"""Registration helper shared by the environment modules."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium

from prl.registry import ENVS


def register_env(name: str, cls: Any, gym_id: str, description: str) -> None:
    """Register ``cls`` as ``name`` in prl.registry.ENVS and as ``prl/{gym_id}`` in gymnasium."""
    ENVS.register(name, cls, description=description, gym_id=f"prl/{gym_id}")
    full = f"prl/{gym_id}"
    if full not in gymnasium.registry:
        gymnasium.register(id=full, entry_point=f"{cls.__module__}:{cls.__qualname__}")


def accepted_render_mode(
    render_mode: str | None, modes: Sequence[str], env_name: str
) -> str | None:
    """``render_mode`` if the environment supports it; otherwise warn and ignore it (→ None).

    As gymnasium does, an unsupported mode is not an error: toolchains such as SB3's
    ``make_vec_env`` pass ``render_mode="rgb_array"`` to every environment they build.
    """
    if render_mode is None or render_mode in modes:
        return render_mode
    warnings.warn(
        f"{env_name} does not render in mode {render_mode!r} (supported: {list(modes)}); "
        "rendering is disabled",
        UserWarning,
        stacklevel=3,
    )
    return None
