"""One self-contained HTML page: figures embedded as base64 PNG, tables, no external files."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 72rem;
       margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2rem; }
.meta { color: #666; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; }
td { overflow-wrap: anywhere; }
td.num, td.keep { white-space: nowrap; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9rem; color: #444; }
.note { background: #f8f8f0; border-left: 3px solid #cc9; padding: 0.4rem 0.8rem;
        font-size: 0.9rem; }
"""


@dataclass(frozen=True)
class Table:
    """A table: a header row and body rows of already formatted cells."""

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    # indices of columns holding numbers (right-aligned, never broken)
    numeric: Sequence[int] = field(default_factory=tuple)
    # indices of short text columns never broken across lines (other cells break
    # anywhere, so that long paths and names fit the page)
    keep: Sequence[int] = field(default_factory=tuple)


@dataclass(frozen=True)
class FigureBlock:
    """A PNG figure with its caption."""

    png: bytes
    caption: str
    alt: str


@dataclass(frozen=True)
class Section:
    """A heading with paragraphs, tables and figures, shown in that order."""

    title: str
    paragraphs: Sequence[str] = field(default_factory=tuple)
    tables: Sequence[Table] = field(default_factory=tuple)
    figures: Sequence[FigureBlock] = field(default_factory=tuple)
    notes: Sequence[str] = field(default_factory=tuple)


def render(title: str, meta: str, sections: Sequence[Section]) -> str:
    """The whole page as a string; every text is HTML-escaped."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{html.escape(meta)}</p>',
    ]
    parts.append(fragment(sections))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def fragment(sections: Sequence[Section], heading: str = "h2") -> str:
    """The sections alone, without a page around them (e.g. for a notebook cell)."""
    parts = []
    for section in sections:
        parts.append(f"<{heading}>{html.escape(section.title)}</{heading}>")
        parts.extend(f"<p>{html.escape(p)}</p>" for p in section.paragraphs)
        parts.extend(_table(t) for t in section.tables)
        parts.extend(_figure(f) for f in section.figures)
        parts.extend(f'<p class="note">{html.escape(n)}</p>' for n in section.notes)
    return "\n".join(parts)


def _table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = []
    for row in table.rows:
        cells = "".join(f"<td{_cell_class(table, i)}>{html.escape(c)}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell_class(table: Table, column: int) -> str:
    if column in table.numeric:
        return ' class="num"'
    return ' class="keep"' if column in table.keep else ""


def _figure(block: FigureBlock) -> str:
    data = base64.b64encode(block.png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block.alt)}">'
        f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
    )
