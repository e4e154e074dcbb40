"""The documentation site's sources: the API reference lists every core module, the README stays a
short front door whose links reach pages of the site, and every page is in mkdocs.yml's nav
(`mkdocs build --strict` in .ci/run checks the links and references themselves)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_the_api_reference_lists_every_core_module():
    listed = set(re.findall(r"^::: (allocator_pipeline\.core\.[\w.]+)$", (DOCS / "api.md").read_text(), re.M))
    modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "allocator_pipeline" / "core").glob("*/*.py")
        if p.name != "__init__.py"
    }
    assert modules - listed == set(), "add them to docs/api.md"
    assert listed - modules == set(), "docs/api.md names modules that do not exist"


def test_the_readme_is_a_short_front_door_linking_into_the_site():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 300
    links = re.findall(r"\]\((docs/[^)#]+)", text)
    assert {"docs/usage.md", "docs/method.md", "docs/settings.md", "docs/research.md"} <= set(links)
    for link in links:
        assert (ROOT / link).is_file(), link


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in DOCS.glob("*.md"):
        assert f": {page.name}" in nav, page.name
