"""``prl reproduce``: every registered check and figure, then an index page (Markdown + HTML)."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prl.checks import CheckOutcome, run_check
from prl.errors import UnknownNameError
from prl.figure import FigureOutcome, make_figure
from prl.progress import heartbeat
from prl.registry import CHECKS, FIGURES, load_plugins
from prl.utils import (
    atomic_write_json,
    atomic_write_text,
    check_out_dir,
    git_info,
    resolve_device,
)

SMOKE_NOTE = "smoke test: not a result"


def _figure_text(name: str) -> tuple[str, str]:
    """A figure's paper and what it shows (its description, and its claim where it has one)."""
    if name not in FIGURES:
        return "", ""
    spec = FIGURES.get(name)
    what = " ".join(str(spec.description).split())
    claim = getattr(spec, "claim", "")
    if claim:
        what += f" — claim: {' '.join(str(claim).split())}"
    return str(spec.paper), what


def reproduce(
    out: str | Path = "results",
    *,
    quick: bool = False,
    device: Any = "cpu",
    seed: int = 0,
    only: list[str] | None = None,
    echo: Callable[[str], None] | None = print,
    budget: str | None = None,
    rerun: bool = False,
    backend: str = "local",
    workers: int | None = None,
    store: str | Path | None = None,
) -> tuple[list[CheckOutcome], list[FigureOutcome]]:
    """Run the checks and figures (all, or the names in ``only``) into ``out`` and write
    ``out/index.md``, ``index.html`` and ``index.json``. ``budget`` is the figures' tier
    (quick, mid, full; ``quick=True`` means quick); checks run quick only at quick. Mid and
    full figures come from the store (:mod:`prl.store`), their runs being sweep jobs on
    ``backend``."""
    load_plugins()
    tier = budget or ("quick" if quick else "full")
    quick = tier == "quick"
    if only is None:
        check_names, fig_names = CHECKS.names(), FIGURES.names()
    else:  # validate every name before any work or any file
        unknown = [n for n in only if n not in CHECKS and n not in FIGURES]
        if unknown:
            raise UnknownNameError(
                f"unknown check or figure {', '.join(map(repr, unknown))}; see `prl list`"
            )
        check_names = [n for n in only if n in CHECKS]
        fig_names = [n for n in only if n in FIGURES]
    resolve_device(device)  # e.g. cuda without a GPU: one clear error before any work
    out = check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    c_out: list[CheckOutcome] = []
    n_items = len(check_names) + len(fig_names)
    for i, n in enumerate(check_names, 1):
        with heartbeat(f"[{i}/{n_items}] check {n}"):
            o = run_check(CHECKS.get(n), quick=quick, device=device, seed=seed, out=out / "checks")
        c_out.append(o)
        if echo:
            status = "PASS" if o.passed else ("ERROR" if o.error else "FAIL")
            echo(f"[check ] {status:5s} {n} ({o.seconds:.1f}s)")
    f_out: list[FigureOutcome] = []
    for i, n in enumerate(fig_names, len(check_names) + 1):
        with heartbeat(f"[{i}/{n_items}] figure {n}"):
            fo = make_figure(
                n, out=out / "figures", device=device, catch=True, budget=tier, rerun=rerun,
                backend=backend, workers=workers, store=store,
            )  # fmt: skip
        f_out.append(fo)
        if echo:
            status = "OK" if fo.ok else "ERROR"
            echo(
                f"[figure] {status:5s} {n} ({fo.seconds:.1f}s)"
                + (f": {fo.error}" if fo.error else "")
            )
    total = time.perf_counter() - t0
    write_index(out, c_out, f_out, quick=quick, total_seconds=total, device=str(device), tier=tier)
    if echo:
        n_pass = sum(o.passed for o in c_out)
        n_fig = sum(f.ok for f in f_out)
        echo(
            f"{n_pass}/{len(c_out)} checks passed, {n_fig}/{len(f_out)} figures made in "
            f"{total:.1f}s; index: {out / 'index.html'}"
        )
    return c_out, f_out


def write_index(
    out: Path,
    checks: list[CheckOutcome],
    figures: list[FigureOutcome],
    *,
    quick: bool,
    total_seconds: float,
    device: str,
    tier: str | None = None,
) -> None:
    """Write index.md, index.html and index.json linking every produced file."""
    git = git_info()
    mode = tier or ("quick" if quick else "full")
    md = [
        "# prl reproduction",
        "",
        f"Mode: **{mode}** · device: {device} · commit: `{git.get('commit')}`"
        f"{' (dirty)' if git.get('dirty') else ''} · total wall-clock: {total_seconds:.1f} s",
        "",
        "## Theory checks",
        "",
        "| check | paper | claim | what is measured | measured | claimed | tol | result "
        "| time (s) | files |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows_html = []
    for o in checks:
        r = o.result
        status = "PASS" if o.passed else ("ERROR" if o.error else "FAIL")
        links = [f"[{k}](checks/{v})" for k, v in o.files.items()]
        meas = "" if r is None else f"{r.measured:.4g}"
        clm = "" if r is None else f"{r.comparison} {r.claimed:.4g}"
        tol = "" if r is None else f"{r.tolerance:.3g}"
        claim = o.check.claim.replace("|", "\\|")
        what = "" if r is None else " ".join(r.detail.split()).replace("|", "\\|")
        md.append(
            f"| {o.check.name} | {o.check.paper} | {claim} | {what} | {meas} | {clm} | {tol} "
            f"| **{status}** | {o.seconds:.1f} | {' '.join(links)} |"
        )
        hl = " ".join(
            f'<a href="checks/{html.escape(v)}">{html.escape(k)}</a>' for k, v in o.files.items()
        )
        img = (
            f'<br><img src="checks/{html.escape(o.files["png"])}" width="360">'
            if "png" in o.files
            else ""
        )
        err = f"<br><small>{html.escape(o.error)}</small>" if o.error else ""
        rows_html.append(
            f"<tr><td>{html.escape(o.check.name)}</td><td>{html.escape(o.check.paper)}</td>"
            f"<td>{html.escape(o.check.claim)}</td><td>{html.escape(what)}</td>"
            f"<td>{meas}</td><td>{html.escape(clm)}</td>"
            f"<td>{tol}</td><td class='{status.lower()}'>{status}{err}</td>"
            f"<td>{o.seconds:.1f}</td><td>{hl}{img}</td></tr>"
        )
    smoke = SMOKE_NOTE if quick else ""
    md += [
        "",
        "## Figures",
        "",
        *(
            [
                f"**{SMOKE_NOTE}**: quick-budget figures check that the code runs end to end; "
                "their numbers are not the papers' results (run `prl reproduce` for those).",
                "",
            ]
            if quick
            else []
        ),
        "| figure | paper | what it shows | seeds | result | time (s) | files |",
        "|---|---|---|---|---|---|---|",
    ]
    figs_html = []
    for f in figures:
        status = "OK" if f.ok else "ERROR"
        links = [f"[{k}](figures/{v})" for k, v in f.files.items()]
        paper, what = _figure_text(f.name)
        verdict = f"**{status}**" + (f" ({smoke})" if smoke and f.ok else "")
        md.append(
            f"| {f.name} | {paper} | {what.replace('|', '/')} | {', '.join(map(str, f.seeds))} "
            f"| {verdict}{(' ' + f.error.replace('|', '/')) if f.error else ''} "
            f"| {f.seconds:.1f} | {' '.join(links)} |"
        )
        hl = " ".join(
            f'<a href="figures/{html.escape(v)}">{html.escape(k)}</a>' for k, v in f.files.items()
        )
        img = (
            f'<br><img src="figures/{html.escape(f.files["png"])}" width="480">'
            if "png" in f.files
            else ""
        )
        err = f"<br><small>{html.escape(f.error)}</small>" if f.error else ""
        figs_html.append(
            f"<tr><td>{html.escape(f.name)}</td><td>{html.escape(paper)}</td>"
            f"<td>{html.escape(what)}</td><td>{', '.join(map(str, f.seeds))}</td>"
            f"<td class='{status.lower()}'>{status}{err}"
            f"{'<br><span class=smoke>' + smoke + '</span>' if smoke and f.ok else ''}</td>"
            f"<td>{f.seconds:.1f}</td>"
            f"<td>{hl}{img}</td></tr>"
        )
    claim_md, claim_html = _claims_section(figures)
    md += claim_md
    atomic_write_text(out / "index.md", "\n".join(md) + "\n")
    smoke_html = (
        f'<p class="smoke">{SMOKE_NOTE}: quick-budget figures check that the code runs end to '
        "end; their numbers are not the papers' results (run <code>prl reproduce</code>).</p>"
        if quick
        else ""
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>prl reproduction ({mode})</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}.pass,.ok{{color:#070}}
.fail,.error{{color:#a00;font-weight:bold}}.smoke{{color:#b00;font-weight:bold}}</style>
</head><body>
<h1>prl reproduction</h1>
<p>Mode: <b>{mode}</b> · device: {html.escape(device)} · commit:
<code>{html.escape(str(git.get("commit")))}</code> · total wall-clock: {total_seconds:.1f} s</p>
<h2>Theory checks</h2>
<table><tr><th>check</th><th>paper</th><th>claim</th><th>what is measured</th>
<th>measured</th><th>claimed</th>
<th>tol</th><th>result</th><th>time (s)</th><th>files</th></tr>
{"".join(rows_html)}
</table>
<h2>Figures</h2>
{smoke_html}
<table><tr><th>figure</th><th>paper</th><th>what it shows</th><th>seeds</th><th>result</th>
<th>time (s)</th><th>files</th></tr>
{"".join(figs_html)}
</table>{claim_html}</body></html>
"""
    atomic_write_text(out / "index.html", page)
    atomic_write_json(
        out / "index.json",
        {
            "mode": mode,
            "device": device,
            "git": git,
            "total_seconds": round(total_seconds, 3),
            "checks": [o.as_dict() for o in checks],
            "figures": [
                {
                    "name": f.name,
                    "ok": f.ok,
                    "seconds": round(f.seconds, 3),
                    "files": f.files,
                    "seeds": list(f.seeds),
                    "error": f.error,
                    "budget": f.tier or mode,
                    "claim": f.claim,
                    "paper": _figure_text(f.name)[0],
                    "description": _figure_text(f.name)[1],
                    "smoke_test": quick,
                }
                for f in figures
            ],
        },
    )


def _claims_section(figures: list[FigureOutcome]) -> tuple[list[str], str]:
    """The control figures' claims: verdict, effect size with CI, seeds and budget."""
    rows = [f for f in figures if f.claim]
    if not rows:
        return [], ""
    md = [
        "",
        "## Control claims",
        "",
        "Verdict rule: see `prl/claims.py` (95% stratified-bootstrap CI of the IQM difference; "
        "quick-budget verdicts are smoke tests, not results).",
        "",
        "| figure | claim | verdict | effect (IQM difference [95% CI], P(improvement)) | seeds "
        "| budget |",
        "|---|---|---|---|---|---|",
    ]
    trs: list[str] = []
    notes: list[str] = []
    for f in rows:
        c = f.claim or {}
        verdict = c["verdict"] + (" (smoke, not a result)" if c.get("smoke") else "")
        effect = _effect(c)
        seeds = ", ".join(map(str, c.get("seeds", [])))
        text = c["text"].replace("|", "\\|")
        md.append(
            f"| {f.name} | {text} | **{verdict}** — {c['reason'].replace('|', '/')} "
            f"| {effect.replace('|', '/')} | {seeds} | {c.get('budget')} |"
        )
        details = ""
        if c.get("analysis"):
            notes.append(f"- **{f.name}**: {c['analysis']}")
            details = f"<details><summary>analysis</summary><small>{html.escape(c['analysis'])}"
            details += "</small></details>"
        trs.append(
            f"<tr><td>{html.escape(f.name)}</td><td>{html.escape(c['text'])}</td>"
            f"<td><b>{html.escape(verdict)}</b><br><small>{html.escape(c['reason'])}</small>"
            f"{details}</td>"
            f"<td>{html.escape(effect)}</td><td>{seeds}</td><td>{html.escape(str(c.get('budget')))}"
            "</td></tr>"
        )
    if notes:
        md += ["", "Analyses of the verdicts (from each store's manifest):", "", *notes]
    page = (
        "<h2>Control claims</h2><table><tr><th>figure</th><th>claim</th><th>verdict</th>"
        "<th>effect</th><th>seeds</th><th>budget</th></tr>" + "".join(trs) + "</table>"
    )
    return md, page


def _effect(c: dict[str, Any]) -> str:
    parts = []
    for r in c.get("comparisons", []):
        if r.get("status") != "ran":
            continue
        if "diff" in r:
            parts.append(
                f"{r['comparison']}: {r['diff']:.3g} [{r['diff_lo']:.3g}, {r['diff_hi']:.3g}], "
                f"P {r['poi']:.2f} ({r['verdict']})"
            )
        else:
            parts.append(f"{r['comparison']}: {r['verdict']}")
    return "; ".join(parts) or "no comparison ran at this budget"
