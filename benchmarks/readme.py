"""Shared by the benchmark scripts: each owns one section of benchmarks/README.md."""
from __future__ import annotations

import platform
import re
from pathlib import Path


def replace_section(text: str, title: str, body: str) -> str:
    """Replace '## title' up to the next '## ' heading (or append it)."""
    block = f"## {title}\n\n{body.strip()}\n"
    pat = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(text):
        return pat.sub(lambda _: block + "\n", text).rstrip() + "\n"
    return (text.rstrip() + "\n\n" if text.strip() else "# Benchmarks\n\n") + block


def cpu_model() -> str:
    """The processor's model name (/proc/cpuinfo), for the tables' 'measured on' lines."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
