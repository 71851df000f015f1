"""Named registries (environments, algorithms, oracles, checks, figures) and plugin loading.

The core never imports ``prl.envs``, ``prl.algos``, ``prl.theory`` or ``prl.figures`` directly:
their modules register themselves here when imported, and :func:`load_plugins` imports them
through the ``prl.plugins`` entry-point group declared in ``pyproject.toml``.

**Lazy lookup.** ``prl/_index.json`` (generated with the README catalog by
``python -m prl.catalog --write README.md``; a test keeps it current) lists every built-in name
with its one-line description and the module that registers it. Names, descriptions and
unknown-name errors come from it without importing any family (``prl list`` imports no torch);
:meth:`Registry.entry` imports only the module that registers the name asked for.
"""

from __future__ import annotations

import difflib
import importlib
import json
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from prl.errors import UnknownNameError

T = TypeVar("T")

PLUGIN_GROUP = "prl.plugins"
_DEFAULT_PLUGINS = ("prl.envs", "prl.algos", "prl.theory", "prl.figures")
_plugins_loaded = False
INDEX_PATH = Path(__file__).with_name("_index.json")
_index_cache: dict[str, dict[str, dict[str, str]]] | None = None


def _index() -> dict[str, dict[str, dict[str, str]]]:
    """The generated name index: kind → name → {"module", "description"} (empty if absent)."""
    global _index_cache
    if _index_cache is None:
        try:
            _index_cache = json.loads(INDEX_PATH.read_text())
        except (OSError, ValueError):
            _index_cache = {}
    return _index_cache


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object with its name, one-line description and free-form metadata."""

    name: str
    obj: T
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A name → object table whose lookups fail with a clear, suggestion-bearing error."""

    def __init__(self, kind: str, key: str = ""):
        self.kind = kind
        self.key = key  # this registry's section of the generated index ("algos", ...)
        self._entries: dict[str, Entry[T]] = {}

    def _indexed(self) -> dict[str, dict[str, str]]:
        return _index().get(self.key, {}) if self.key else {}

    def _import_for(self, name: str) -> None:
        """Import the module that registers ``name`` (from the index), or every plugin."""
        if name in self._entries:
            return
        info = self._indexed().get(name)
        if info is not None:
            importlib.import_module(info["module"])
        if name not in self._entries:
            load_plugins()  # a third-party plugin's name, or a stale index

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
        """The entry for ``name`` (importing only its module); an unknown name raises
        :class:`UnknownNameError`."""
        if name not in self._entries:
            if name not in self._indexed() and not _third_party_plugins():
                raise UnknownNameError(self._unknown_message(name))  # fast: nothing imported
            self._import_for(str(name))
        if name not in self._entries:
            raise UnknownNameError(self._unknown_message(name))
        return self._entries[name]

    def get(self, name: str) -> T:
        """The object registered under ``name``."""
        return self.entry(name).obj

    def names(self) -> list[str]:
        """Registered names (built-in ones from the index, whether imported or not), sorted."""
        return sorted(set(self._entries) | set(self._indexed()))

    def entries(self) -> list[Entry[T]]:
        """Registered entries, sorted by name (imports the modules that register them)."""
        return [self.entry(n) for n in self.names()]

    def summaries(self) -> list[tuple[str, str]]:
        """``(name, one-line description)`` for every name, without importing any family."""
        out = {n: e.description for n, e in self._entries.items()}
        for n, info in self._indexed().items():
            out.setdefault(n, info.get("description", ""))
        return sorted(out.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._indexed()

    def registered(self, name: str) -> bool:
        """Whether ``name`` is registered in this process already (not merely indexed)."""
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


ENVS: Registry[Callable[..., Any]] = Registry("environment", "envs")
ALGOS: Registry[Any] = Registry("algorithm", "algos")
ORACLES: Registry[Callable[..., Any]] = Registry("oracle", "oracles")
CHECKS: Registry[Any] = Registry("check", "checks")
FIGURES: Registry[Any] = Registry("figure", "figures")

REGISTRIES: dict[str, Registry[Any]] = {
    "envs": ENVS,
    "algos": ALGOS,
    "oracles": ORACLES,
    "checks": CHECKS,
    "figures": FIGURES,
}


def _plugin_modules() -> list[str]:
    try:
        from importlib.metadata import entry_points

        return [ep.value for ep in entry_points(group=PLUGIN_GROUP)]
    except Exception:  # pragma: no cover - metadata unavailable
        return []


def _third_party_plugins() -> list[str]:
    """Entry-point plugins other than the lab's own packages (not covered by the index)."""
    if _plugins_loaded:
        return []
    return [m for m in _plugin_modules() if m not in _DEFAULT_PLUGINS]


def load_third_party_plugins() -> None:
    """Import only the entry-point plugins that are not the lab's own (indexed) packages."""
    for mod in _third_party_plugins():
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def write_index(path: Path = INDEX_PATH) -> dict[str, dict[str, dict[str, str]]]:
    """Import every built-in family and write the name index (kind → name → module, description)."""
    global _index_cache
    load_plugins()
    index = {
        key: {
            e.name: {"module": _registering_module(e.obj), "description": e.description}
            for e in (reg._entries[n] for n in sorted(reg._entries))
            if _registering_module(e.obj).startswith("prl.")
        }
        for key, reg in REGISTRIES.items()
    }
    path.write_text(json.dumps(index, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    _index_cache = index
    return index


def _registering_module(obj: Any) -> str:
    """The module whose import registers ``obj``: that of the class or function it wraps."""
    for attr in ("cls", "fn", "func", "run"):
        inner = getattr(obj, attr, None)
        if inner is not None and getattr(inner, "__module__", None):
            return str(inner.__module__)
    return str(getattr(obj, "__module__", "") or "")


def load_plugins() -> None:
    """Import every package of the ``prl.plugins`` entry-point group (once per process)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    import prl.oracles  # noqa: F401  (registers the core oracles)

    names = _plugin_modules()
    for mod in _DEFAULT_PLUGINS:  # the lab's own packages: every public module registers itself
        pkg = importlib.import_module(mod)
        for m in pkgutil.iter_modules(pkg.__path__):
            if not m.name.startswith("_"):
                importlib.import_module(f"{mod}.{m.name}")
    for mod in dict.fromkeys(names):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # a real import error inside the plugin: surface it
                raise
    _plugins_loaded = True
