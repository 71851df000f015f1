"""The ``prl`` command: list, run, check, figure, sweep, reproduce.

Bad input — unknown names, malformed arguments or specs, invalid matrices, NaN rewards — ends
with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from prl.errors import ConfigError, PrlError

KINDS = ("envs", "algos", "oracles", "checks", "figures")


class UsageError(PrlError):
    """A malformed command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v


def _kv(text: str) -> tuple[str, Any]:
    import yaml

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        val = yaml.safe_load(v)
    except yaml.YAMLError:
        val = v
    return k.strip(), val


def _build_parser() -> _Parser:
    p = _Parser(prog="prl", description="Preference-based RL control and theory lab.")
    sub = p.add_subparsers(dest="cmd", parser_class=_Parser, metavar="COMMAND")
    sub.required = True

    ls = sub.add_parser("list", help="list registered envs, algos, oracles, checks, figures")
    ls.add_argument("kind", nargs="?", choices=KINDS, help="what to list (default: everything)")

    r = sub.add_parser(
        "run",
        help="train one algorithm on one environment",
        description="Train ALGO on ENV. Config fields of ALGO are options too: "
        "see `prl run ALGO --help`.",
        add_help=False,
    )
    r.add_argument("algo", nargs="?", help="algorithm name (prl list algos)")
    r.add_argument("--env", help="environment name (prl list envs)")
    r.add_argument("--seed", type=_nonneg_int, default=0)
    r.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help="training budget (default: the --budget preset)",
    )
    r.add_argument(
        "--budget",
        choices=["try", "full"],
        default="try",
        help="default budget: try (about a minute on 2 CPU cores) or full (the paper's)",
    )
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    r.add_argument("--out", default="runs", help="parent directory of run directories")
    r.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN_DIR",
        help="continue the newest matching run (or RUN_DIR) from its last checkpoint",
    )
    r.add_argument("--checkpoint-every", type=_positive_int, default=None)
    r.add_argument(
        "--env-kw",
        action="append",
        type=_kv,
        default=[],
        metavar="KEY=VALUE",
        help="environment keyword argument (repeatable)",
    )
    r.add_argument("--config", dest="config_file", help="YAML file of config field values")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("-h", "--help", action="store_true")

    c = sub.add_parser("check", help="run theory checks (exit 0 iff all passed)")
    c.add_argument("names", nargs="*", metavar="NAME")
    c.add_argument("--all", action="store_true")
    c.add_argument("--quick", action="store_true")
    c.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    c.add_argument("--seed", type=_nonneg_int, default=0)
    c.add_argument("--json", action="store_true", help="print results as JSON")
    c.add_argument("--out", default=None, help="write tables/figures here")

    f = sub.add_parser("figure", help="regenerate a paper figure (CSV + PNG)")
    f.add_argument("names", nargs="*", metavar="NAME")
    f.add_argument("--all", action="store_true")
    f.add_argument("--quick", action="store_true")
    f.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    f.add_argument("--out", default="results/figures")

    s = sub.add_parser("sweep", help="run a grid of runs from a YAML spec")
    s.add_argument("spec")
    s.add_argument("--backend", default="local", choices=["local", "ray"])
    s.add_argument("--workers", type=_positive_int, default=None)
    s.add_argument("--out", default=None, help="parent directory (overrides the spec's out)")

    rp = sub.add_parser("reproduce", help="every check + every figure + an index page")
    rp.add_argument("--quick", action="store_true")
    rp.add_argument("--out", default="results")
    rp.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    rp.add_argument("--seed", type=_nonneg_int, default=0)
    rp.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        default=None,
        help="reproduce only these checks/figures (names from `prl list`)",
    )
    return p


def _cmd_list(args: argparse.Namespace) -> int:
    from prl.registry import REGISTRIES, load_plugins

    load_plugins()
    kinds = [args.kind] if args.kind else list(KINDS)
    for kind in kinds:
        reg = REGISTRIES[kind]
        if len(kinds) > 1:
            print(f"{kind}:")
        width = max((len(n) for n in reg.names()), default=0)
        for e in reg.entries():
            indent = "  " if len(kinds) > 1 else ""
            print(f"{indent}{e.name:<{width}}  {e.description}".rstrip())
    return 0


def _config_help(algo: str) -> str:
    from prl.config import field_help
    from prl.registry import ALGOS, load_plugins

    load_plugins()
    cls = ALGOS.get(algo)
    lines = [f"prl run {algo} --env ENV [options]", "", f"{cls.__doc__ or ''}".strip(), ""]
    lines.append(f"Config fields of {cls.Config.__name__} (as --name VALUE):")
    for fld in dataclasses.fields(cls.Config):
        default = (
            fld.default
            if fld.default is not dataclasses.MISSING
            else (fld.default_factory() if fld.default_factory is not dataclasses.MISSING else "")
        )
        lines.append(
            f"  --{fld.name.replace('_', '-')} (default {default!r}): "
            f"{field_help(cls.Config, fld.name)}"
        )
    return "\n".join(lines)


def _parse_config_overrides(algo: str, extra: list[str]) -> dict[str, Any]:
    from prl.registry import ALGOS, load_plugins

    load_plugins()
    cls = ALGOS.get(algo)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    out: dict[str, Any] = {}
    i = 0
    while i < len(extra):
        tok = extra[i]
        if not tok.startswith("--"):
            raise UsageError(f"prl run: unexpected argument {tok!r}")
        key, val = [*tok[2:].split("=", 1), None][:2]
        name = key.replace("-", "_")
        if name not in fields:
            raise ConfigError(
                f"unknown option --{key} for {algo} (config fields: "
                f"{', '.join('--' + f.replace('_', '-') for f in sorted(fields))})"
            )
        if val is None:
            if i + 1 >= len(extra) or extra[i + 1].startswith("--"):
                raise UsageError(f"prl run: option --{key} needs a value")
            val = extra[i + 1]
            i += 1
        out[name] = val
        i += 1
    return out


def _cmd_run(args: argparse.Namespace, extra: list[str]) -> int:
    import yaml

    from prl.run import run_experiment

    if args.help:
        if args.algo:
            print(_config_help(args.algo))
        else:
            _build_parser().parse_args(["run", "--help"])
        return 0
    if not args.algo:
        raise UsageError("prl run: missing ALGO (see prl list algos)")
    if not args.env and args.resume in (False, None):
        raise UsageError("prl run: --env ENV is required (see prl list envs)")
    config: dict[str, Any] = {}
    if args.config_file:
        path = Path(args.config_file)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"malformed YAML in {path}: {getattr(exc, 'problem', exc)}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of field: value")
        config.update(loaded)
    config.update(_parse_config_overrides(args.algo, extra))
    resume = args.resume
    steps, note = args.steps, None
    if steps is None and resume in (False, None):
        steps, note = _default_budget(args.algo, args.budget)
    res = run_experiment(
        args.algo,
        args.env or "",
        seed=args.seed,
        steps=steps,
        device=args.device,
        out=args.out,
        resume=resume,
        config=config,
        env_kwargs=dict(args.env_kw),
        checkpoint_every=args.checkpoint_every,
        progress=False if args.no_progress else None,
        announce=(lambda: print(note, file=sys.stderr, flush=True)) if note else None,
    )
    shown = {k: v for k, v in res.final.items()}
    print(f"run directory: {res.run_dir}")
    print("final: " + ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items()))
    return 0


def budget_steps(algo: str, budget: str = "try") -> int:
    """``prl run``'s default budget of ``algo``: the "try it" preset or the paper's (``full``)."""
    from prl.registry import ALGOS, load_plugins

    load_plugins()
    cls = ALGOS.get(algo)
    if budget == "full":
        return int(cls.default_steps)
    return int(getattr(cls, "cli_default_steps", None) or cls.default_steps)


def _default_budget(algo: str, budget: str) -> tuple[int, str]:
    """The budget of a run without --steps, and the line saying so (printed before training)."""
    from prl.registry import ALGOS

    cls = ALGOS.get(algo)
    unit = getattr(cls, "step_unit", "steps")
    full = int(cls.default_steps)
    steps = budget_steps(algo, budget)
    if budget == "try" and steps < full:
        note = f"try-it budget; the paper's is {full:,} (--budget full, or --steps N)"
    else:
        note = "the paper's budget" if budget == "full" else "default budget"
    return steps, f"budget: {steps:,} {unit} ({note})"


def _fmt(v: Any) -> str:
    try:
        return f"{float(v):.6g}"
    except (TypeError, ValueError):
        return str(v)


def _cmd_check(args: argparse.Namespace) -> int:
    from prl.checks import outcomes_json, run_checks

    if not args.names and not args.all:
        raise UsageError("prl check: give check NAMEs or --all (see prl list checks)")
    names = None if args.all else args.names
    outs = run_checks(
        names,
        quick=args.quick,
        device=args.device,
        seed=args.seed,
        out=Path(args.out) if args.out else None,
        echo=None if args.json else print,
    )
    if args.json:
        print(outcomes_json(outs))
    else:
        print(f"{sum(o.passed for o in outs)}/{len(outs)} checks passed")
    return 0 if all(o.passed for o in outs) else 1


def _cmd_figure(args: argparse.Namespace) -> int:
    from prl.figure import make_figure
    from prl.progress import heartbeat
    from prl.registry import FIGURES, load_plugins

    load_plugins()
    if not args.names and not args.all:
        raise UsageError("prl figure: give a figure NAME or --all (see prl list figures)")
    names = FIGURES.names() if args.all else args.names
    for n in names:
        FIGURES.entry(n)
    ok = True
    for n in names:
        with heartbeat(f"figure {n}"):
            fo = make_figure(n, out=args.out, quick=args.quick, device=args.device, catch=args.all)
        if fo.ok:
            print(
                f"{n}: "
                + ", ".join(str(Path(args.out) / v) for v in fo.files.values())
                + f" ({fo.seconds:.1f}s)"
            )
        else:
            ok = False
            print(f"{n}: ERROR {fo.error}", file=sys.stderr)
    return 0 if ok else 1


def _cmd_sweep(args: argparse.Namespace) -> int:
    from prl.sweep import load_spec, run_sweep

    spec = load_spec(args.spec, out=args.out)
    rows = run_sweep(spec, backend=args.backend, workers=args.workers)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from prl.reproduce import reproduce

    checks, figs = reproduce(
        args.out, quick=args.quick, device=args.device, seed=args.seed, only=args.only
    )
    return 0 if all(c.passed for c in checks) and all(f.ok for f in figs) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``prl`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if args.cmd != "run" and extra:
            raise UsageError(f"prl {args.cmd}: unrecognized arguments: {' '.join(extra)}")
        if args.cmd == "list":
            return _cmd_list(args)
        if args.cmd == "run":
            return _cmd_run(args, extra)
        if args.cmd == "check":
            return _cmd_check(args)
        if args.cmd == "figure":
            return _cmd_figure(args)
        if args.cmd == "sweep":
            return _cmd_sweep(args)
        if args.cmd == "reproduce":
            return _cmd_reproduce(args)
        raise UsageError(f"prl: unknown command {args.cmd!r}")  # pragma: no cover
    except PrlError as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        if not msg.startswith("prl"):
            msg = f"prl: error: {msg}"
        print(msg, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("prl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `prl list | head`
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
