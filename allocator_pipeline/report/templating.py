"""The Jinja2 templates of the pages (``report/templates/``, shipped as package data): one layout
(``layout.html.j2``) shared by the walk-forward report (``report.html.j2``) and the comparison of
two runs (``compare.html.j2``), the building blocks (``macros.html.j2``: the table, the section,
the chart) and one template per report section (``report/<section>.html.j2``).

Values are escaped by the templates (autoescape); a fragment already built as HTML is passed as
:class:`markupsafe.Markup`. Rendering is deterministic: the same values give the same bytes.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

__all__ = ["Markup", "environment", "render"]


@cache
def environment() -> jinja2.Environment:
    """The templates' environment: package loader, autoescape, undefined names are errors, block
    tags take their own line's newline (``trim_blocks``, ``lstrip_blocks``)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("allocator_pipeline.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template: str, **values: Any) -> str:
    """Render the template ``template`` (a file name under ``report/templates/``) with ``values``."""
    return environment().get_template(template).render(**values)
