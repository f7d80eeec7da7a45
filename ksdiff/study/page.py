"""The rater's page: one index.html beside its videos/ folder, with the public design inlined.

The design is inlined (not fetched) because browsers refuse fetch() from file:// pages; the videos are
plain relative <video> sources, which file:// and any static host serve. The page holds no method
names: the key stays in design.json, outside the folder raters get.
"""
from __future__ import annotations

import json
from pathlib import Path

import jinja2

from ksdiff.io.files import atomic_write_bytes
from ksdiff.study.design import public

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent), autoescape=True,
                          undefined=jinja2.StrictUndefined)


def render_page(design: dict, title: str | None = None) -> str:
    # '</' cannot end the inline JSON's <script> early: escaped as JSON allows.
    blob = json.dumps(public(design), separators=(",", ":")).replace("</", "<\\/")
    return _ENV.get_template("page.html").render(
        title=title or f"User study {design['name']}", criteria=design["criteria"], design_json=blob)


def write_page(design: dict, site: Path) -> Path:
    path = site / "index.html"
    atomic_write_bytes(path, render_page(design).encode())
    return path
