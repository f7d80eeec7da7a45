"""ksdiff's modules import each other one way only: no import cycle anywhere in the package, counting
imports inside functions too (an import moved into a function hides a cycle from Python, not from this
graph), and the report never imports the evaluation code (it reads metric names from
ksdiff.metrics.registry)."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "ksdiff"
OWNED = ("ksdiff.evaluate", "ksdiff.metrics", "ksdiff.report")  # the check itself, below


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):  # every import, at any depth
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                deps.add(node.module)
                deps |= {f"{node.module}.{a.name}" for a in node.names}  # `from pkg import submodule`
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def _cycles_through(graph: dict[str, set[str]], prefixes) -> list[list[str]]:
    """Strongly connected components (Tarjan) with more than one module, that hold a module under ``prefixes``."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 and any(c.startswith(prefixes) for c in comp):
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_in_the_package():
    """Once one ran through the shard loop, the packs, the training data and inference
    (ksdiff.data.shards imported ksdiff.infer for the inference jobs, now ksdiff.infer_shards)."""
    assert _cycles_through(_graph(), ("ksdiff",)) == []


def test_the_report_does_not_import_the_evaluation_code():
    graph = _graph()
    assert {m for m, deps in graph.items() if m.startswith("ksdiff.report") and "ksdiff.evaluate" in deps} == set()


def test_the_cycle_check_finds_a_cycle():
    """The check itself: a graph with a cycle through ksdiff.report is reported."""
    g = {"ksdiff.report.a": {"ksdiff.report.b"}, "ksdiff.report.b": {"ksdiff.report.a"}, "ksdiff.x": set()}
    assert _cycles_through(g, OWNED) == [["ksdiff.report.a", "ksdiff.report.b"]]
