"""`pip install .` brings what ksdiff imports: every distribution the package's modules import is
declared in pyproject.toml, nothing declared goes unused, and the tested pins satisfy the ranges."""
import ast
import sys
import tomllib
from importlib.metadata import packages_distributions

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

# Imported by ksdiff but not from an installed distribution.
NOT_DISTRIBUTIONS = {"decalib": "DECA's code, imported from the user's checkout (coeffs.deca_dir)"}


def _imported_modules() -> dict[str, set[str]]:
    """Top-level module -> the package files importing it (absolute imports, stdlib and ksdiff left out)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "ksdiff").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if top != "ksdiff" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def _declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = [r for reqs in project.get("optional-dependencies", {}).values() for r in reqs]
    return [Requirement(r) for r in project["dependencies"] + extras]


def test_every_imported_distribution_is_declared_and_every_declared_one_imported():
    imported = _imported_modules()
    dists = packages_distributions()
    declared = {canonicalize_name(r.name) for r in _declared()}
    unknown = sorted(m for m in imported if m not in dists and m not in NOT_DISTRIBUTIONS)
    assert not unknown, f"imported but not installed here, so their distribution is unknown: {unknown}"
    used = {canonicalize_name(d) for m in imported if m in dists for d in dists[m]}
    missing = {m: (dists[m], sorted(imported[m])) for m in imported
               if m in dists and not declared & {canonicalize_name(d) for d in dists[m]}}
    assert not missing, f"imported by ksdiff, not declared in pyproject.toml: {missing}"
    assert not declared - used, f"declared in pyproject.toml, imported nowhere in ksdiff: {sorted(declared - used)}"


def test_the_pinned_stack_satisfies_the_declared_ranges():
    pins = {}
    for name in ("requirements.txt", "requirements-nodeps.txt"):
        for line in (REPO / "envs" / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if "==" in line:
                dist, version = line.split("==")
                pins[canonicalize_name(dist)] = version.strip()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared but not pinned in envs/requirements*.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"pin {req.name}=={pins[name]} outside {req}"
