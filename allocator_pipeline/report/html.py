"""HTML building blocks of the walk-forward report: escaping, tables, images, sections.

The markup of the page, its tables and its sections is in the Jinja2 templates
(``report/templates/``, :mod:`~allocator_pipeline.report.templating`); images are PNG data URIs,
the style sheet is inline (``templates/page.css``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from allocator_pipeline.report.templating import Markup, escape, macro, render


def esc(value: Any) -> str:
    """HTML-escape any value's string form, quotes too (the templates' own escaping)."""
    return str(escape(str(value)))


def png_img(png: bytes, alt: str) -> str:
    """An ``<img>`` whose source is the PNG embedded as a base64 data URI."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="chart" alt="{esc(alt)}" src="data:image/png;base64,{data}">'


Cell = tuple[str, str]  # (text, css class)


class Section(NamedTuple):
    """A section of a page: its anchor, its title and its content (HTML)."""

    anchor: str
    title: str
    body: Markup


def cell(text: Any, kind: str = "num") -> Cell:
    return (str(text), kind)


def html_table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], row_classes: Sequence[str] | None = None) -> str:
    """A table from header strings and rows of (text, css class) cells (the ``table`` macro of
    ``templates/macros.html.j2``); text is escaped."""
    return str(
        macro("table")(list(headers), [list(r) for r in rows], None if row_classes is None else list(row_classes))
    )


def signed_class(value: float | None) -> str:
    """CSS class of a difference: 'num pos' above zero, 'num neg' below, 'num' otherwise."""
    if value is None or value != value:
        return "num"
    return "num pos" if value > 0 else "num neg" if value < 0 else "num"


def page(title: str, subtitle: str, nav: Sequence[tuple[str, str]], sections: Sequence[Section]) -> str:
    """The whole walk-forward report (``templates/report.html.j2`` in the shared layout): head with
    the inline style sheet, title, sub-title (HTML), navigation and sections."""
    return render("report.html.j2", title=title, subtitle=Markup(subtitle), nav=list(nav), sections=list(sections))
