"""HTML building blocks of the walk-forward report: cells, images, sections, the page.

The markup of the page, its tables and its sections is in the Jinja2 templates
(``report/templates/``, :mod:`~allocator_pipeline.report.templating`); images are PNG data URIs,
the style sheet is inline (``templates/page.css``).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, NamedTuple

from allocator_pipeline.report.templating import Markup, render


def png_data(png: bytes) -> str:
    """A PNG as the base64 text of its data URI (the ``chart`` macro's ``data``)."""
    return base64.b64encode(png).decode("ascii")


def fragment(name: str, **values: Any) -> str:
    """A section's content: the template ``templates/report/<name>.html.j2`` rendered with
    ``values`` (strings are escaped; a fragment already HTML is passed as :class:`Markup`)."""
    return render(f"report/{name}.html.j2", **values)


Cell = tuple[str, str]  # (text, css class)


class Section(NamedTuple):
    """A section of a page: its anchor, its title and its content (HTML)."""

    anchor: str
    title: str
    body: Markup


def cell(text: Any, kind: str = "num") -> Cell:
    return (str(text), kind)


def signed_class(value: float | None) -> str:
    """CSS class of a difference: 'num pos' above zero, 'num neg' below, 'num' otherwise."""
    if value is None or value != value:
        return "num"
    return "num pos" if value > 0 else "num neg" if value < 0 else "num"


def page(title: str, subtitle: str, nav: Sequence[tuple[str, str]], sections: Sequence[Section]) -> str:
    """The whole walk-forward report (``templates/report.html.j2`` in the shared layout): head with
    the inline style sheet, title, sub-title (text), navigation and sections."""
    return render("report.html.j2", title=title, subtitle=subtitle, nav=list(nav), sections=list(sections))
