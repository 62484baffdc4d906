"""Server-rendered HTML pages: one way to load their templates."""

from __future__ import annotations

from pathlib import Path

import jinja2


def page_templates(folder: Path) -> jinja2.Environment:
    """The templates in `folder`, autoescaped (customer text is shown as text) and strict
    (a name the page does not get is an error, not an empty string)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
