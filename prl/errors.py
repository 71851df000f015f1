"""User-facing errors: the CLI prints their message on one line and exits with status 2."""

from __future__ import annotations


class PrlError(Exception):
    """Base class of every error caused by bad input (names, shapes, matrices, configs)."""


class UnknownNameError(PrlError, LookupError):
    """A name (environment, algorithm, oracle, check, figure) that no registry holds."""

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError
        return str(self.args[0]) if self.args else ""


class InvalidInputError(PrlError, ValueError):
    """Malformed data: wrong shapes, NaN/inf values, invalid preference matrices."""


class ConfigError(PrlError, ValueError):
    """A malformed configuration or command line (unknown fields, wrong types, bad ranges)."""


class Interrupted(Exception):
    """A command stopped by SIGTERM or SIGINT after cleaning up (the CLI exits 128 + signum).

    Not a :class:`PrlError`: nothing was wrong with the input.
    """

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = int(signum)
