"""Named registries (environments, algorithms, oracles, checks, figures) and plugin loading.

The core never imports ``envs``, ``algos``, ``theory`` or ``figures`` directly: those packages
register themselves here when imported, and :func:`load_plugins` imports them through the
``prl.plugins`` entry-point group declared in ``pyproject.toml``.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from prl.errors import UnknownNameError

T = TypeVar("T")

PLUGIN_GROUP = "prl.plugins"
_DEFAULT_PLUGINS = ("prl.envs", "prl.algos", "prl.theory", "prl.figures")
_plugins_loaded = False


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object with its name, one-line description and free-form metadata."""

    name: str
    obj: T
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A name → object table whose lookups fail with a clear, suggestion-bearing error."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self, name: str, obj: T | None = None, *, description: str = "", **meta: Any
    ) -> Any:
        """Register ``obj`` under ``name``; without ``obj`` return a decorator."""

        def _add(o: T) -> T:
            if name in self._entries and self._entries[name].obj is not o:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            desc = description or _first_doc_line(o)
            self._entries[name] = Entry(name=name, obj=o, description=desc, meta=dict(meta))
            return o

        return _add(obj) if obj is not None else _add

    def entry(self, name: str) -> Entry[T]:
        """The entry for ``name``; an unknown name raises :class:`UnknownNameError`."""
        if name not in self._entries:
            raise UnknownNameError(self._unknown_message(name))
        return self._entries[name]

    def get(self, name: str) -> T:
        """The object registered under ``name``."""
        return self.entry(name).obj

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        """Registered entries, sorted by name."""
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self.names(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = ", ".join(self.names()) or "none registered"
        return f"unknown {self.kind} {name!r}{hint} (known: {known})"


def _first_doc_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    doc = doc.strip()
    return doc.splitlines()[0].strip() if doc else ""


ENVS: Registry[Callable[..., Any]] = Registry("environment")
ALGOS: Registry[Any] = Registry("algorithm")
ORACLES: Registry[Callable[..., Any]] = Registry("oracle")
CHECKS: Registry[Any] = Registry("check")
FIGURES: Registry[Any] = Registry("figure")

REGISTRIES: dict[str, Registry[Any]] = {
    "envs": ENVS,
    "algos": ALGOS,
    "oracles": ORACLES,
    "checks": CHECKS,
    "figures": FIGURES,
}


def load_plugins() -> None:
    """Import every package of the ``prl.plugins`` entry-point group (once per process)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    import prl.oracles  # noqa: F401  (registers the core oracles)

    names: list[str] = []
    try:
        from importlib.metadata import entry_points

        names = [ep.value for ep in entry_points(group=PLUGIN_GROUP)]
    except Exception:  # pragma: no cover - metadata unavailable
        names = []
    for mod in dict.fromkeys([*names, *_DEFAULT_PLUGINS]):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # a real import error inside the plugin: surface it
                raise
    _plugins_loaded = True
