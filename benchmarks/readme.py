"""Shared by the benchmark scripts: each owns one section of benchmarks/README.md."""
from __future__ import annotations

import re


def replace_section(text: str, title: str, body: str) -> str:
    """Replace '## title' up to the next '## ' heading (or append it)."""
    block = f"## {title}\n\n{body.strip()}\n"
    pat = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(text):
        return pat.sub(lambda _: block + "\n", text).rstrip() + "\n"
    return (text.rstrip() + "\n\n" if text.strip() else "# Benchmarks\n\n") + block
