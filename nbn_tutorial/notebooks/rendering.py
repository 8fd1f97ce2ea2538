"""Readable results without Jupyter: executed notebooks and the report as standalone HTML pages (nbconvert).

A notebook's page embeds its figures (they are stored in the notebook), so it can be opened from disk,
attached to a course page or served as it is. The report's page keeps the report's relative links.
"""
from __future__ import annotations

import html
from pathlib import Path

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import atomic_write_text
from nbn_tutorial.notebooks.profiles import read_notebook

PAGE_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 75em; margin: 2em auto;
       padding: 0 1em; line-height: 1.5; color: #1f2328; }
table { border-collapse: collapse; margin: 1em 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 0.3em 0.7em; text-align: right; white-space: nowrap; }
a.anchor-link { visibility: hidden; text-decoration: none; margin-left: 0.3em; }
h1:hover a.anchor-link, h2:hover a.anchor-link, h3:hover a.anchor-link { visibility: visible; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; }
code { background: #f6f8fa; padding: 0.1em 0.3em; border-radius: 3px; }
"""


def html_path(notebook: str | Path) -> Path:
    """Where the HTML page of an executed notebook goes: next to it, same name, ``.html``."""
    return Path(notebook).with_suffix(".html")


def notebook_html(notebook: str | Path, remedy: str = "execute it again") -> Path:
    """Render an executed notebook as a standalone HTML page next to it (JupyterLab's look); returns the page.
    ``remedy`` ends the sentence for a notebook that cannot be read."""
    from nbconvert import HTMLExporter   # deferred: notebook libraries: only notebook commands need them


    path = Path(notebook)
    if not path.is_file():
        raise UserError(f"notebook {path} does not exist; run the notebooks first (nbn-tutorial notebooks run)")
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(read_notebook(path, remedy))
    return atomic_write_text(html_path(path), body)


def markdown_page(markdown: str, title: str) -> str:
    """A markdown text (tables, images, links) as a standalone HTML page."""
    from nbconvert.filters import markdown2html   # deferred: notebook libraries: only notebook commands need them

    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{PAGE_STYLE}</style>\n</head>\n<body>\n"
            f"{markdown2html(markdown)}\n</body>\n</html>\n")
