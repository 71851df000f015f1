"""Tiny settings for every registered algorithm: one short training each (about a second on CPU).

Each algorithm declares its own settings next to it, as a class attribute of its learner::

    @register_algo("name", ...)
    class MyLearner(Learner):
        smoke = Smoke(env="dueling", steps=40, config={...}, source="tests/test_mine.py")

(or ``register_algo("name", ..., smoke=Smoke(...))``). :data:`SMOKE`, :data:`FAMILY_REPRESENTATIVES`
and :func:`smoke_for` read these declarations from :data:`prl.registry.ALGOS`; they are used by
``tests/test_matrix.py`` (determinism across seeds, kill/resume per family) and by docs and
benchmarks that need a quick run of everything. The matrix test fails for a registered
algorithm without a declaration. A declaration belongs to the class that makes it: a subclass
registered under another name declares its own.

``seed_dependent=False`` marks exact deterministic updates (the tabular Nash solvers with exact
win rates): their metric rows must not change with the seed at all. ``resume`` says what a run
killed mid-way and continued with ``--resume`` guarantees: ``"exact"`` (metrics.csv identical to
an uninterrupted run: the checkpoint holds every generator, optimizer and environment state) or
``"completes"`` (the run finishes with finite metrics, but some state is not checkpointed).
``family`` (a label such as ``"nash"``) marks the algorithm as its family's kill/resume
representative.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = ["FAMILY_REPRESENTATIVES", "SMOKE", "Smoke", "declared_smoke", "smoke_for"]


@dataclass(frozen=True)
class Smoke:
    """One tiny training: ``prl.run.train(algo, env, steps=steps, config=config, ...)``.

    ``algo`` is filled in from the registered name when the declaration is read.
    """

    algo: str = ""
    env: str = ""
    steps: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    seed_dependent: bool = True
    resume: Literal["exact", "completes"] = "exact"
    source: str = ""  # the test whose TINY configuration this is
    family: str = ""  # non-empty: this algorithm is the family's kill/resume representative

    def __post_init__(self) -> None:
        if not self.env or int(self.steps) < 1:
            raise ValueError(f"Smoke needs an env and steps >= 1, got {self.env!r}, {self.steps}")
        if self.resume not in ("exact", "completes"):
            raise ValueError(f"Smoke.resume must be 'exact' or 'completes', got {self.resume!r}")

    def cli_args(self) -> list[str]:
        """The same settings as ``prl run`` arguments (config fields as ``--field=value``)."""
        import json

        args = [self.algo, "--env", self.env]
        for k, v in self.env_kwargs.items():
            args += ["--env-kw", f"{k}={json.dumps(v)}"]
        for k, v in self.config.items():
            text = json.dumps(v) if isinstance(v, (list, dict, bool)) or v is None else str(v)
            args.append(f"--{k.replace('_', '-')}={text}")
        return args


def declared_smoke(name: str, cls: Any, meta: Mapping[str, Any] | None = None) -> Smoke | None:
    """The tiny settings ``cls`` (registered as ``name``) declares itself, or None.

    Read from ``register_algo(..., smoke=...)`` or from the class's own ``smoke`` attribute
    (not an inherited one).
    """
    s = (meta or {}).get("smoke")
    if s is None:
        s = getattr(cls, "__dict__", {}).get("smoke")
    return replace(s, algo=name) if isinstance(s, Smoke) else None


def _declared() -> dict[str, Smoke]:
    from prl.registry import ALGOS, load_plugins

    load_plugins()
    out: dict[str, Smoke] = {}
    for e in ALGOS.entries():
        s = declared_smoke(e.name, e.obj, e.meta)
        if s is not None:
            out[e.name] = s
    return out


class _SmokeTable(Mapping[str, Smoke]):
    """algorithm name → its declared :class:`Smoke`, read from the registry at each lookup."""

    def __getitem__(self, algo: str) -> Smoke:
        return _declared()[algo]

    def __iter__(self) -> Iterator[str]:
        return iter(_declared())

    def __len__(self) -> int:
        return len(_declared())

    def __contains__(self, algo: object) -> bool:
        return algo in _declared()

    def __repr__(self) -> str:
        return f"SMOKE({sorted(_declared())})"


class _FamilyTable(Mapping[str, str]):
    """family label → its kill/resume representative (the algorithm whose Smoke names it)."""

    def _table(self) -> dict[str, str]:
        return {s.family: s.algo for s in _declared().values() if s.family}

    def __getitem__(self, family: str) -> str:
        return self._table()[family]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return f"FAMILY_REPRESENTATIVES({self._table()})"


SMOKE: Mapping[str, Smoke] = _SmokeTable()
FAMILY_REPRESENTATIVES: Mapping[str, str] = _FamilyTable()


def smoke_for(algo: str) -> Smoke:
    """The tiny settings of ``algo``; an algorithm without a declaration raises UnknownNameError."""
    from prl.errors import UnknownNameError

    table = _declared()
    if algo not in table:
        raise UnknownNameError(
            f"no tiny settings for algorithm {algo!r}: declare `smoke = Smoke(...)` on its "
            f"learner class (known: {', '.join(sorted(table))})"
        )
    return table[algo]
