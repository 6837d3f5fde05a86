"""Notes, hypotheses and conclusions are markdown; shown as HTML with raw HTML disabled, so a
note can never inject a script into the page."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _renderer() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
        ["table", "strikethrough"]
    )


@lru_cache(maxsize=4096)
def render_markdown(text: str) -> str:
    """Safe HTML for a markdown text (raw HTML in it is shown as text)."""
    return _renderer().render(text) if text else ""
