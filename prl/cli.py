"""The ``prl`` command: list, run, check, figure, sweep, reproduce.

Bad input — unknown names, malformed arguments or specs, invalid matrices, NaN rewards — ends
with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from prl.errors import ConfigError, Interrupted, PrlError

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


def _seed(text: str) -> int:
    from prl.utils import MAX_SEED

    try:
        v = int(text)
    except ValueError:
        v = -1
    if not 0 <= v <= MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"expected an integer seed in [0, {MAX_SEED}], got {text[:40]!r}"
        )
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not (v > 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
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


def _budget_flags(p: argparse.ArgumentParser) -> None:
    """--budget quick|mid|full (--quick = --budget quick), --rerun, --backend, --workers."""
    p.add_argument(
        "--budget",
        choices=["quick", "mid", "full"],
        default="full",
        help="budget tier: quick (CI), mid (this machine, stored), full (paper)",
    )
    p.add_argument(
        "--quick", dest="budget", action="store_const", const="quick", help="same as --budget quick"
    )
    p.add_argument("--rerun", action="store_true", help="recompute the stored runs")
    p.add_argument(
        "--backend",
        default="local",
        choices=["local", "ray"],
        help="where mid/full runs go: local process pool or a Ray cluster",
    )
    p.add_argument("--workers", type=_positive_int, default=None)
    _threads_flag(p)


def _threads_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch/BLAS threads of every run inside (default: PRL_THREADS or OMP_NUM_THREADS if "
        "set, else 1: these workloads are many small networks, fastest single-threaded)",
    )


def _many_small_runs_threads(args: argparse.Namespace) -> None:
    """check/figure/reproduce: one thread per run unless asked otherwise.

    Their workloads are many small networks and tensor ops, where a second thread only spins:
    ``prl reproduce --quick`` measured 595 s with two threads against 177 s with one on the
    2-core machine (benchmarks/RESULTS.md). The setting reaches every nested run through
    ``PRL_THREADS`` (each run records it in its config).
    """
    import os

    from prl.utils import default_threads, thread_env

    n = args.threads
    if n is None:
        user = any(
            os.environ.get(v, "").strip().isdigit() for v in ("PRL_THREADS", "OMP_NUM_THREADS")
        )
        n = default_threads() if user else 1
    os.environ.update(thread_env(n))


def _build_parser() -> _Parser:
    p = _Parser(prog="prl", description="Preference-based RL control and theory lab.")
    sub = p.add_subparsers(dest="cmd", parser_class=_Parser, metavar="COMMAND")
    sub.required = True

    ls = sub.add_parser("list", help="list registered envs, algos, oracles, checks, figures")
    ls.add_argument("kind", nargs="?", choices=KINDS, help="what to list (default: everything)")
    ls.add_argument("--json", action="store_true", help="print the listing as JSON")

    r = sub.add_parser(
        "run",
        help="train one algorithm on one environment",
        description="Train ALGO on ENV. Config fields of ALGO are options too: "
        "see `prl run ALGO --help`.",
        add_help=False,
    )
    r.add_argument("algo", nargs="?", help="algorithm name (prl list algos)")
    r.add_argument("--env", help="environment name (prl list envs)")
    r.add_argument("--seed", type=_seed, default=None, help="random seed (default 0)")
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
    r.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="default: auto")
    r.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch/BLAS threads, recorded in config.json and kept on resume (default: "
        "PRL_THREADS or OMP_NUM_THREADS if set, else every available core)",
    )
    r.add_argument("--out", default="runs", help="parent directory of run directories")
    r.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN_DIR",
        help="continue the newest matching run (or RUN_DIR) from its last checkpoint",
    )
    r.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=None,
        help="checkpoint every N steps (default: a tenth of the budget)",
    )
    r.add_argument(
        "--checkpoint-minutes",
        type=_positive_float,
        default=None,
        help="also checkpoint at least this often in wall-clock minutes (default 5)",
    )
    r.add_argument(
        "--env-kw",
        action="append",
        type=_kv,
        default=[],
        metavar="KEY=VALUE",
        help="environment keyword argument (repeatable)",
    )
    r.add_argument("--config", dest="config_file", help="YAML file of config field values")
    r.add_argument(
        "--tensorboard",
        default=None,
        metavar="DIR",
        help="log to TensorBoard under DIR/RUN_NAME/: the metrics rows as prl/* scalars, and for "
        "SB3-based learners SB3's own logger (train/*, rollout/*, time/*; also progress.csv); "
        "needs the [tensorboard] extra; the run's numbers do not change",
    )
    r.add_argument("--no-progress", action="store_true")
    r.add_argument(
        "-h", "--help", action="store_true", help="show this help (with ALGO: its fields)"
    )
    p.run_parser = r  # type: ignore[attr-defined]  (printed by `prl run --help`)

    c = sub.add_parser("check", help="run theory checks (exit 0 iff all passed)")
    c.add_argument("names", nargs="*", metavar="NAME")
    c.add_argument("--all", action="store_true")
    c.add_argument("--quick", action="store_true")
    c.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    c.add_argument("--seed", type=_seed, default=0)
    c.add_argument("--json", action="store_true", help="print results as JSON")
    c.add_argument("--out", default=None, help="write tables/figures here")
    _threads_flag(c)

    f = sub.add_parser("figure", help="regenerate a paper figure (CSV + PNG)")
    f.add_argument("names", nargs="*", metavar="NAME")
    f.add_argument("--all", action="store_true")
    _budget_flags(f)
    f.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    f.add_argument("--out", default="results/figures")

    s = sub.add_parser("sweep", help="run a grid of runs from a YAML spec")
    s.add_argument("spec")
    s.add_argument(
        "--backend",
        default="local",
        choices=["local", "ray"],
        help="local: one process per job on this machine; ray: Ray tasks on the cluster at "
        "RAY_ADDRESS (else a local Ray instance), scheduled by the cluster's CPUs and GPUs",
    )
    s.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="local: jobs at once (default: the CPU count); ray: CPUs of the local Ray instance "
        "started when there is no cluster (a cluster's own resources set its concurrency)",
    )
    s.add_argument("--out", default=None, help="parent directory (overrides the spec's out)")
    s.add_argument(
        "--shared-storage",
        action="store_true",
        default=None,
        help="ray: the sweep directory is on a filesystem every node sees, so jobs write there "
        "directly (default: each job runs in a node-local directory and its files are sent "
        "back to the driver, which writes them into the sweep directory)",
    )

    rp = sub.add_parser("reproduce", help="every check + every figure + an index page")
    _budget_flags(rp)
    rp.add_argument("--out", default="results")
    rp.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    rp.add_argument("--seed", type=_seed, default=0)
    rp.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        default=None,
        help="reproduce only these checks/figures (names from `prl list`)",
    )
    return p


def _cmd_list(args: argparse.Namespace) -> int:
    from prl.registry import REGISTRIES, load_third_party_plugins

    load_third_party_plugins()  # the lab's own names come from the index: no family is imported
    kinds = [args.kind] if args.kind else list(KINDS)
    if args.json:
        doc = {
            kind: [
                {"name": e.name, "description": e.description} for e in REGISTRIES[kind].entries()
            ]
            for kind in kinds
        }
        _emit_json(doc[args.kind] if args.kind else doc)
        return 0
    for kind in kinds:
        reg = REGISTRIES[kind]
        if len(kinds) > 1:
            print(f"{kind}:")
        rows = reg.summaries()
        width = max((len(n) for n, _ in rows), default=0)
        for name, description in rows:
            indent = "  " if len(kinds) > 1 else ""
            print(f"{indent}{name:<{width}}  {description}".rstrip())
    return 0


def _config_help(algo: str) -> str:
    from prl.config import field_help
    from prl.registry import ALGOS

    cls = ALGOS.get(algo)  # imports only the module that registers ``algo``
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
    from prl.registry import ALGOS

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
            print(_build_parser().run_parser.format_help().rstrip())  # type: ignore[attr-defined]
        return 0
    if not args.algo:
        raise UsageError("prl run: missing ALGO (see prl list algos)")
    if not args.env and args.resume in (False, None):
        raise UsageError("prl run: --env ENV is required (see prl list envs)")
    from prl.utils import read_text_file

    config: dict[str, Any] = {}
    if args.config_file:
        path = Path(args.config_file)
        text = read_text_file(path, "config file")
        try:
            loaded = yaml.safe_load(text) or {}
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
        checkpoint_minutes=args.checkpoint_minutes,
        threads=args.threads,
        progress=False if args.no_progress else None,
        announce=(lambda: print(note, flush=True)) if note else None,
        tensorboard=args.tensorboard,
    )
    shown = {k: v for k, v in res.final.items()}
    print(f"run directory: {res.run_dir}")
    if res.already_finished:
        print(f"already finished at step {res.steps_done}: nothing to do")
    print("final: " + ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items()))
    return 0


def budget_steps(algo: str, budget: str = "try") -> int:
    """``prl run``'s default budget of ``algo``: the "try it" preset or the paper's (``full``)."""
    from prl.registry import ALGOS

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
    from prl.utils import check_out_dir

    _many_small_runs_threads(args)
    if not args.names and not args.all:
        raise UsageError("prl check: give check NAMEs or --all (see prl list checks)")
    if args.out is not None:
        check_out_dir(args.out)
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
        _emit_json(outs, outcomes_json)
    else:
        print(f"{sum(o.passed for o in outs)}/{len(outs)} checks passed")
    return 0 if all(o.passed for o in outs) else 1


def _cmd_figure(args: argparse.Namespace) -> int:
    from prl.figure import make_figure
    from prl.progress import heartbeat
    from prl.registry import FIGURES

    _many_small_runs_threads(args)
    if not args.names and not args.all:
        raise UsageError("prl figure: give a figure NAME or --all (see prl list figures)")
    from prl.utils import check_out_dir, resolve_device

    names = FIGURES.names() if args.all else args.names
    for n in names:
        FIGURES.entry(n)
    resolve_device(args.device)
    check_out_dir(args.out)
    ok = True
    for n in names:
        with heartbeat(f"figure {n}"):
            fo = make_figure(n, out=args.out, device=args.device, catch=args.all, **_tier_kw(args))
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


def _tier_kw(args: argparse.Namespace) -> dict[str, Any]:
    return {"budget": args.budget, "rerun": args.rerun, "backend": args.backend,
            "workers": args.workers}  # fmt: skip


def _cmd_sweep(args: argparse.Namespace) -> int:
    from prl.sweep import load_spec, run_sweep

    spec = load_spec(args.spec, out=args.out, backend=args.backend)
    rows = run_sweep(
        spec, backend=args.backend, workers=args.workers, shared_storage=args.shared_storage
    )
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from prl.reproduce import reproduce

    _many_small_runs_threads(args)
    checks, figs = reproduce(
        args.out, device=args.device, seed=args.seed, only=args.only, **_tier_kw(args)
    )
    return 0 if all(c.passed for c in checks) and all(f.ok for f in figs) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``prl`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # --json: everything any library writes to stdout (even at file-descriptor level, like the
    # HiGHS banner) goes to stderr; the JSON document is written to the real stdout at the end
    json_mode = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
    global _JSON_OUT
    _JSON_OUT = None
    if not json_mode:
        return _main(argv)
    from prl.utils import stdout_to_stderr

    with stdout_to_stderr():
        code = _main(argv)
    doc = _JSON_OUT
    if doc is None:  # an error: its line is on stderr; stdout still holds one JSON document
        doc = json.dumps({"error": _LAST_ERROR or f"exit status {code}", "status": code})
    try:
        sys.stdout.write(doc + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        return 0
    return code


_JSON_OUT: str | None = None
_LAST_ERROR: str | None = None


def _emit_json(obj: Any, render: Any = None) -> None:
    """Keep a command's JSON document for :func:`main` to print on the real stdout."""
    global _JSON_OUT
    _JSON_OUT = render(obj) if render is not None else json.dumps(obj, indent=2)


def _main(argv: list[str]) -> int:
    global _LAST_ERROR
    _LAST_ERROR = None
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
        return _fail(" ".join(str(exc).split()) or type(exc).__name__)
    except Interrupted as exc:
        print(f"prl: {exc}", file=sys.stderr)
        _LAST_ERROR = str(exc)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("prl: interrupted", file=sys.stderr)
        _LAST_ERROR = "interrupted"
        return 130
    except BrokenPipeError:  # e.g. `prl list | head`
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:  # file-system trouble anywhere: one line, status 2
        return _fail(_os_message(exc))


def _fail(msg: str) -> int:
    global _LAST_ERROR
    if not msg.startswith("prl"):
        msg = f"prl: error: {msg}"
    _LAST_ERROR = msg
    print(msg, file=sys.stderr)
    return 2


def _os_message(exc: OSError) -> str:
    what = exc.strerror or type(exc).__name__
    where = " → ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    return f"{what}: {where}" if where else " ".join(str(exc).split()) or what


if __name__ == "__main__":
    sys.exit(main())
