"""MkDocs hooks of the documentation site (``mkdocs build``; see mkdocs.yml).

Before each build, :func:`prl.docsite.generate` writes the pages made from the registries (the
catalog, the theory checks with their claims, the figures with their claims and verdicts) and
copies the notebooks into ``docs/generated/``; the navigation lists the pages that exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prl.docsite import generate, nav

DOCS = Path(__file__).resolve().parent


def on_config(config: Any, **kwargs: Any) -> Any:
    """Generate the registry pages, then set the navigation to the pages that exist."""
    generate(DOCS)
    config["nav"] = nav(DOCS)
    return config
