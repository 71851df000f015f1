"""Pages of the documentation site generated from the registries (run by ``mkdocs build``).

``generate(docs_dir)`` writes ``docs_dir/generated/``: the catalog, one page listing every theory
check with its paper and claim, one listing every figure with its paper, what it shows and its
claim, and copies of the teaching notebooks (mkdocs-jupyter renders them, executing them at
build time unless ``PRL_DOCS_EXECUTE=false``). When a reproduction exists (``results/index.json``,
or the directory in ``$PRL_DOCS_RESULTS``) the check and figure pages also show its verdicts and
plots. ``nav(docs_dir)`` is the site's navigation over the pages that exist.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from prl.catalog import ROOT, catalog
from prl.registry import CHECKS, FIGURES, load_plugins

RESULTS_ENV = "PRL_DOCS_RESULTS"
GENERATED = "generated"


def _text(s: Any) -> str:
    return " ".join(str(s).split())


def _results(results: Path | None) -> tuple[Path | None, dict[str, Any]]:
    """The reproduction to show: its directory and its index.json (or nothing)."""
    if results is None:
        env = os.environ.get(RESULTS_ENV, "").strip()
        results = Path(env) if env else ROOT / "results"
    index = results / "index.json"
    if not index.exists():
        return None, {}
    return results, json.loads(index.read_text())


def _copy_png(results: Path, sub: str, name: str | None, img: Path) -> str | None:
    if not name:
        return None
    src = results / sub / name
    if not src.exists():
        return None
    img.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, img / f"{sub}-{name}")
    return f"img/{sub}-{name}"


def checks_page(results: Path | None, index: dict[str, Any], img: Path) -> str:
    """Markdown: every registered check with its paper, claim, command and latest verdict."""
    load_plugins()
    by_name = {c["name"]: c for c in index.get("checks", [])}
    mode = index.get("mode")
    out = [
        "# Theory checks",
        "",
        "Each check runs an experiment small enough to compute exactly and compares the measured "
        "number with the paper's claim (`prl check NAME`; exit status 0 iff it passed).",
        "",
    ]
    if mode:
        out += [f"Verdicts from a **{mode}** reproduction (`prl reproduce`).", ""]
    else:
        out += [
            "No reproduction found: run `prl reproduce --quick` and rebuild to see verdicts.",
            "",
        ]
    for e in CHECKS.entries():
        c = e.obj
        out += [
            f"## {c.name}",
            "",
            f"**Paper.** {_text(c.paper)}",
            "",
            f"**Claim.** {_text(c.claim)}",
            "",
            f"**Run it.** `prl check {c.name} --quick`",
            "",
        ]
        r = by_name.get(c.name)
        if r is not None:
            if r.get("error"):
                out += [f"**Verdict ({mode}).** ERROR: `{_text(r['error'])}`", ""]
            else:
                verdict = "PASS" if r["passed"] else "FAIL"
                out += [
                    f"**Verdict ({mode}).** {verdict}: measured {r['measured']:.6g} "
                    f"{r['comparison']} claimed {r['claimed']:.6g} (tolerance "
                    f"{r['tolerance']:.3g}); measured = {_text(r.get('detail') or '')}",
                    "",
                ]
            png = _copy_png(results, "checks", r.get("files", {}).get("png"), img)  # type: ignore[arg-type]
            if png:
                out += [f"![{c.name}]({png})", ""]
    return "\n".join(out) + "\n"


def figures_page(results: Path | None, index: dict[str, Any], img: Path) -> str:
    """Markdown: every registered figure with its paper, what it shows, claim and plot."""
    load_plugins()
    by_name = {f["name"]: f for f in index.get("figures", [])}
    mode = index.get("mode")
    out = [
        "# Figures",
        "",
        "Each figure runs its experiments into a CSV and draws the PNG from that CSV "
        "(`prl figure NAME`; `--quick` for a smoke-test budget).",
        "",
    ]
    if mode == "quick":
        out += [
            '!!! warning "Smoke test: not a result"',
            "    These plots come from a **quick** reproduction: they show that the code runs end "
            "to end, not the papers' results. Run `prl reproduce` (full budgets) for those.",
            "",
        ]
    elif not mode:
        out += ["No reproduction found: run `prl reproduce --quick`, then rebuild.", ""]
    for e in FIGURES.entries():
        f = e.obj
        out += [
            f"## {f.name}",
            "",
            f"**Paper.** {_text(f.paper)}",
            "",
            f"**What it shows.** {_text(f.description)}",
            "",
        ]
        claim = getattr(f, "claim", "")
        if claim:
            out += [f"**Claim.** {_text(claim)}", ""]
        out += [
            f"**Make it.** `prl figure {f.name} --quick` (seeds {list(f.quick_seeds)}); "
            f"full budget: `prl figure {f.name}` (seeds {list(f.seeds)})",
            "",
        ]
        r = by_name.get(f.name)
        if r is not None:
            if r.get("error"):
                out += [f"**Verdict ({mode}).** ERROR: `{_text(r['error'])}`", ""]
            else:
                smoke = " (smoke test: not a result)" if mode == "quick" else ""
                out += [f"**Verdict ({mode}).** made in {r['seconds']:.0f} s{smoke}", ""]
            png = _copy_png(results, "figures", r.get("files", {}).get("png"), img)  # type: ignore[arg-type]
            if png:
                out += [f"![{f.name}]({png})", ""]
    return "\n".join(out) + "\n"


def _notebook_title(path: Path) -> str:
    for line in path.read_text().splitlines():
        m = re.match(r"#\s+#\s+(.+)", line)
        if m:
            return m.group(1).strip()
    return path.stem


def generate(docs: Path, results: Path | None = None) -> Path:
    """Write the generated pages under ``docs/generated`` (replacing earlier ones)."""
    gen = docs / GENERATED
    if gen.exists():
        shutil.rmtree(gen)
    (gen / "notebooks").mkdir(parents=True)
    res_dir, index = _results(results)
    img = gen / "img"
    (gen / "catalog.md").write_text(
        "# Catalog\n\nEverything registered, with the one command that runs it.\n\n" + catalog()
    )
    (gen / "checks.md").write_text(checks_page(res_dir, index, img))
    (gen / "figures.md").write_text(figures_page(res_dir, index, img))
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copyfile(nb, gen / "notebooks" / nb.name)
    return gen


def nav(docs: Path) -> list[Any]:
    """The site's navigation: hand-written pages that exist, then the generated ones."""
    pages: list[Any] = [{"Home": "index.md"}]
    for title, page in (
        ("Catalog", f"{GENERATED}/catalog.md"),
        ("Glossary of parameter names", "glossary.md"),
        ("Adding an algorithm, check, figure or notebook", "extending.md"),
        ("Conventions", "conventions.md"),
        ("Determinism", "determinism.md"),
        ("Theory checks", f"{GENERATED}/checks.md"),
        ("Figures", f"{GENERATED}/figures.md"),
    ):
        if (docs / page).exists():
            pages.append({title: page})
    nbs = [
        {_notebook_title(ROOT / "notebooks" / f"{p.stem}.py"): f"{GENERATED}/notebooks/{p.name}"}
        for p in sorted((docs / GENERATED / "notebooks").glob("*.ipynb"))
        if (ROOT / "notebooks" / f"{p.stem}.py").exists()
    ]
    if nbs:
        pages.append({"Notebooks": nbs})
    return pages
