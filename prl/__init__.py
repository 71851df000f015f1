"""prl — the preference-based RL control and theory lab (core vocabulary and machinery)."""

from __future__ import annotations

import os
from typing import Any

from prl.errors import ConfigError, InvalidInputError, PrlError, UnknownNameError

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "InvalidInputError",
    "PrlError",
    "UnknownNameError",
    "__version__",
    "load",
]


def load(run_dir: str | os.PathLike[str], *, device: Any = "cpu") -> Any:
    """The trained model of a run directory (the SB3 model of SB3-based learners, else the
    Learner), rebuilt from config.json and checkpoint.pt (see :mod:`prl.loading`)."""
    from prl.loading import load as _load

    return _load(run_dir, device=device)
