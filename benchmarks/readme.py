"""Shared by the benchmark scripts: each owns one section of benchmarks/README.md."""
from __future__ import annotations

import platform
import re
from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"

# x86 instructions whose results IEEE 754 does not fix (approximations that differ between processor makers),
# as objdump prints them: rcpps/rsqrtps and their AVX-512 forms, x87 transcendentals.
APPROX = re.compile(r"\t(v?rcp(?:ps|ss|14ps|14ss|28ps|28ss)|v?rsqrt(?:ps|ss|14ps|14ss|28ps|28ss)|"
                    r"fsin|fcos|fsincos|fptan|fpatan|f2xm1|fyl2x|fyl2xp1) ")


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


def write_section(title: str, body: str) -> None:
    """Replace (or append) the section '## title' of benchmarks/README.md with ``body``."""
    README.write_text(replace_section(README.read_text() if README.exists() else "", title, body))
