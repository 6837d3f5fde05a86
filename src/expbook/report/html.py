"""The notebook as one self-contained HTML file: the markdown rendered by markdown-it-py, figures
embedded as ``data:`` URIs, a small inline stylesheet, no script and nothing fetched.

Raw HTML in notes is shown as text (markdown-it's ``html`` option is off), and markdown-it
refuses ``javascript:`` links, so a note cannot put a script in the page. Headings get the ids
GitHub gives them, so the contents links work in both.
"""

from __future__ import annotations

import base64
import html
import itertools
from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from expbook.report.text import anchor

STYLE = """
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; font-size: 15px;
       line-height: 1.5; color: #1f2328; max-width: 1100px; margin: 2em auto; padding: 0 1.5em; }
h1, h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
h2 { margin-top: 2.2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; display: block;
        overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; white-space: nowrap; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fafbfc; }
code { background: #eff1f3; border-radius: 4px; padding: .1em .35em; font-size: 90%; }
img { max-width: 100%; height: auto; }
em { color: #57606a; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="expbook report">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
{body}</body>
</html>
"""


def render_html(text: str, images: Mapping[str, bytes], title: str) -> str:
    """The page for markdown ``text``; ``images`` maps each figure's link, as written in the
    markdown (``notebook_files/x.png``), to its PNG bytes."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    tokens = parser.parse(text)
    _heading_ids(tokens)
    _embed_images(tokens, images)
    body = parser.renderer.render(tokens, parser.options, {})
    return PAGE.format(title=html.escape(title), style=STYLE.strip(), body=body)


def _heading_ids(tokens: list[Any]) -> None:
    seen: Counter[str] = Counter()
    for opening, inline in itertools.pairwise(tokens):
        if opening.type != "heading_open":
            continue
        slug = anchor(inline.content.replace("\\", ""))
        opening.attrSet("id", slug if not seen[slug] else f"{slug}-{seen[slug]}")
        seen[slug] += 1


def _embed_images(tokens: list[Any], images: Mapping[str, bytes]) -> None:
    for token in tokens:
        for child in token.children or []:
            if child.type != "image":
                continue
            source = unquote(str(child.attrGet("src")))
            data = images.get(source)
            if data is not None:
                from expbook.artifacts import media_type

                kind = media_type(source)  # image artifacts keep their own type
                kind = kind if kind.startswith("image/") else "image/png"
                encoded = base64.b64encode(data).decode("ascii")
                child.attrSet("src", f"data:{kind};base64,{encoded}")
