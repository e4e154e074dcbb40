"""HTML building blocks of the walk-forward report: escaping, tables, images, the style sheet.

Everything is inline: images are PNG data URIs, the style sheet is a ``<style>`` element, and no
script, external font or link is used, so the page reads offline and prints as it looks.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from typing import Any

PAGE_CSS = """
:root { --ok: #1b7a3a; --bad: #b3261e; --ink: #1d2330; --muted: #5b6474; --rule: #d9dde5; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f8; color: var(--ink);
  font-family: "DejaVu Sans", "Segoe UI", Roboto, Helvetica, Arial, sans-serif; font-size: 14px;
  line-height: 1.45; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 28px 48px; background: #ffffff; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--rule); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p, li { max-width: 1100px; }
.sub { color: var(--muted); margin: 0 0 16px; }
nav { font-size: 13px; margin: 8px 0 16px; color: var(--muted); }
nav a { color: #1f4e9c; text-decoration: none; margin-right: 14px; }
.verdict { border-radius: 6px; padding: 14px 18px; margin: 12px 0 8px; color: #ffffff; }
.verdict.accepted { background: var(--ok); }
.verdict.rejected { background: var(--bad); }
.verdict .word { font-size: 26px; font-weight: bold; letter-spacing: 2px; }
.verdict ul { margin: 6px 0 0; padding-left: 20px; }
.verdict li { margin: 2px 0; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px;
  font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--rule); white-space: nowrap; }
th { background: #eef1f6; font-weight: bold; }
th.l { text-align: left; }
th.r { text-align: right; }
td.num { text-align: right; font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
td.txt { text-align: left; }
tr.hl td { font-weight: bold; background: #f3f7ff; }
tr.upper td { color: var(--muted); font-style: italic; }
td.pos { color: var(--ok); }
td.neg { color: var(--bad); }
td.pass { color: var(--ok); font-weight: bold; text-align: center; }
td.fail { color: var(--bad); font-weight: bold; text-align: center; }
td.detail { white-space: normal; max-width: 520px; color: var(--muted); }
img.chart { display: block; width: 100%; max-width: 1200px; height: auto; margin: 6px 0 10px; }
.note { background: #f7f8fb; border-left: 4px solid var(--rule); padding: 10px 14px; margin: 10px 0; }
.scroll { overflow-x: auto; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
pre { background: #f7f8fb; padding: 10px; overflow-x: auto; }
details summary { cursor: pointer; color: var(--muted); }
"""


def esc(value: Any) -> str:
    """HTML-escape any value's string form (quotes too)."""
    return html.escape(str(value), quote=True)


def png_img(png: bytes, alt: str) -> str:
    """An ``<img>`` whose source is the PNG embedded as a base64 data URI."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="chart" alt="{esc(alt)}" src="data:image/png;base64,{data}">'


Cell = tuple[str, str]  # (text, css class)


def cell(text: Any, kind: str = "num") -> Cell:
    return (str(text), kind)


def html_table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], row_classes: Sequence[str] | None = None) -> str:
    """A table from header strings and rows of (text, css class) cells; text is escaped."""
    rows = list(rows)
    kinds = [c for _, c in rows[0]] if rows else ["txt"] * len(headers)
    head = "".join(
        f'<th class="{"l" if "txt" in kinds[i] or "detail" in kinds[i] else "r"}">{esc(h)}</th>'
        for i, h in enumerate(headers)
    )
    body = []
    for k, row in enumerate(rows):
        cls = row_classes[k] if row_classes is not None and row_classes[k] else ""
        tds = "".join(f'<td class="{esc(c)}">{esc(t)}</td>' for t, c in row)
        body.append(f'<tr class="{esc(cls)}">{tds}</tr>' if cls else f"<tr>{tds}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def signed_class(value: float | None) -> str:
    """CSS class of a difference: 'num pos' above zero, 'num neg' below, 'num' otherwise."""
    if value is None or value != value:
        return "num"
    return "num pos" if value > 0 else "num neg" if value < 0 else "num"


def page(title: str, subtitle: str, nav: Sequence[tuple[str, str]], sections: Sequence[str]) -> str:
    """The whole document: head with the inline style sheet, title, navigation and sections."""
    links = "".join(f'<a href="#{esc(anchor)}">{esc(label)}</a>' for anchor, label in nav)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{PAGE_CSS}</style>\n</head>\n<body>\n<main>\n"
        f'<h1>{esc(title)}</h1>\n<p class="sub">{subtitle}</p>\n<nav>{links}</nav>\n'
        + "\n".join(sections)
        + "\n</main>\n</body>\n</html>\n"
    )
