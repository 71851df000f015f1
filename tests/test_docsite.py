"""The documentation site builds (mkdocs), every internal link resolves, and every page renders
in headless Chromium; the generated check/figure pages carry a reproduction's verdicts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class _Links(HTMLParser):
    """Collects href/src targets and element ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for k, v in attrs:
            if k == "id" and v:
                self.ids.add(v)
            if k in ("href", "src") and v:
                self.links.append(v)


def _parse(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text(encoding="utf-8", errors="replace"))
    return p


def broken_links(site: Path) -> list[str]:
    """Internal links of every page of ``site`` whose file (or #anchor) does not exist."""
    site = site.resolve()
    pages = {p: _parse(p) for p in site.rglob("*.html")}
    bad = []
    for page, parsed in pages.items():
        for link in parsed.links:
            u = urlsplit(link)
            if u.scheme or link.startswith(("//", "mailto:", "data:", "javascript:")):
                continue  # external: not followed (the test machine may be offline)
            if not u.path:
                target = page
            elif u.path.startswith("/"):  # site-absolute (404.html): from the site's root
                target = (site / unquote(u.path).lstrip("/")).resolve()
            else:
                target = (page.parent / unquote(u.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                bad.append(f"{page.relative_to(site)}: {link} (no file)")
            elif u.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(u.fragment) not in ids:
                    bad.append(f"{page.relative_to(site)}: {link} (no #{u.fragment})")
    return bad


def _build(dest: Path, results: Path | None, execute: bool = False) -> Path:
    env = {
        **os.environ,
        "PRL_DOCS_EXECUTE": "true" if execute else "false",
        "NO_MKDOCS_2_WARNING": "1",
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    if results is not None:
        env["PRL_DOCS_RESULTS"] = str(results)
    site = dest / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return site


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once, with the verdicts of a real quick reproduction of one check and
    one figure."""
    from prl.reproduce import reproduce

    tmp = tmp_path_factory.mktemp("docs")
    results = tmp / "results"
    reproduce(results, quick=True, only=["selfplay_regret_identity", "nash_vs_bt"], echo=None)
    return _build(tmp, results)


@pytest.mark.long
def test_site_builds_and_links_resolve(built_site: Path) -> None:
    pages = sorted(p.relative_to(built_site).as_posix() for p in built_site.rglob("*.html"))
    for page in (
        "index.html",
        "generated/catalog.html",
        "generated/checks.html",
        "generated/figures.html",
        "extending.html",
        "generated/notebooks/01_preference_oracles.html",
    ):
        assert page in pages, f"{page} missing from the site: {pages}"
    assert len([p for p in pages if p.startswith("generated/notebooks/")]) == len(
        list((ROOT / "notebooks").glob("*.ipynb"))
    )
    assert broken_links(built_site) == []


@pytest.mark.long
def test_site_pages_carry_registry_content_and_verdicts(built_site: Path) -> None:
    from prl.registry import CHECKS, FIGURES, load_plugins

    load_plugins()
    checks = (built_site / "generated" / "checks.html").read_text()
    figures = (built_site / "generated" / "figures.html").read_text()
    for name in CHECKS.names():
        assert f'id="{name}"' in checks, name
    for name in FIGURES.names():
        assert f'id="{name}"' in figures, name
    # the reproduced check shows its verdict with what was measured, and its plot
    assert "PASS: measured" in checks
    assert "generated/img/checks-selfplay_regret_identity.png" in str(
        sorted(p.relative_to(built_site).as_posix() for p in built_site.rglob("*.png"))
    )
    assert "Smoke test: not a result" in figures


def test_link_checker_finds_broken_links(tmp_path: Path) -> None:
    (tmp_path / "a.html").write_text(
        '<a href="b.html#x">ok</a><a href="b.html#nope">bad anchor</a>'
        '<img src="img/missing.png"><a href="https://example.org">external</a>'
    )
    (tmp_path / "b.html").write_text('<h1 id="x">B</h1><a href="a.html">back</a>')
    assert broken_links(tmp_path) == [
        "a.html: b.html#nope (no #nope)",
        "a.html: img/missing.png (no file)",
    ]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.long
@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed")
def test_every_page_renders_in_headless_chromium(built_site: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    assert chromium is not None
    bad = []
    for page in sorted(built_site.rglob("*.html")):
        if page.name == "404.html":
            continue
        proc = subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={tmp_path / 'profile'}",
                "--virtual-time-budget=3000",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        dom = proc.stdout
        # rendered: the theme's layout and the page's own article with a heading
        if proc.returncode != 0 or "md-content" not in dom or "<h1" not in dom:
            bad.append(f"{page.relative_to(built_site)}: rc={proc.returncode} {proc.stderr[-200:]}")
    assert bad == []
