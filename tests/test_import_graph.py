"""The house stays as docs/architecture.md draws it: no import circle between
the modules of src/idn, and every room depends only on the rooms below it.

The graph is read from the code with ``ast``: every ``import`` and
``from ... import`` (those inside functions too, which break no circle at
run time but do in a reader's head), and ``__import__`` /
``importlib.import_module`` called with a literal name. A package's
``__init__`` is a module of its own: ``from .x import y`` inside package p
is an edge p.x -> ..., and ``from . import x`` an edge to p.x when x is a
submodule, else to p itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "idn"

# rooms (top-level modules and packages of idn) by layer, lowest first; an
# import may only go to a strictly lower layer, or stay inside its own room
LAYERS = [
    {"_version", "limits", "output_names", "plugins", "textfiles"},  # leaves: no idn imports
    {"workloads"},
    {"model"},
    {"serving"},
    {"problem"},
    {"policies", "upper_bounds"},
    {"sim"},
    {"experiments", "runtime"},
    {"api", "cli"},
    {"idn", "fuzzcheck", "__main__"},  # the package's lazy exports, dev tools, python -m idn
]
RANK = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def modules(root: Path) -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def imported_names(tree: ast.AST, package: str) -> list[str]:
    """Absolute dotted names a module's code imports (candidates, resolved below)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [[a.name] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            names += [[f"{mod}.{a.name}", mod] for a in node.names]  # a submodule, else the module
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            f = node.func
            called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if called in ("__import__", "import_module") and isinstance(node.args[0].value, str):
                names.append([node.args[0].value])
    return names


def import_graph(root: Path = SRC) -> nx.DiGraph:
    mods = modules(root)
    g = nx.DiGraph()
    for name, (path, is_package) in mods.items():
        g.add_node(name)
        package = name if is_package else name.rpartition(".")[0]
        for candidates in imported_names(ast.parse(path.read_text()), package):
            target = next((c for c in candidates if c in mods), None)
            if target is not None and target != name:
                g.add_edge(name, target)
    return g


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_the_graph_is_read_from_the_code():
    g = import_graph()
    assert len(g) > 60
    # a few edges that exist, so that a parser gone blind (no edges, no cycles) fails here
    assert g.has_edge("idn.sim.loop", "idn.policies.base")
    assert g.has_edge("idn.cli", "idn.cli.live")  # an import inside a function
    assert g.has_edge("idn.policies.infida.policy", "idn.serving")  # from ... import serving


def test_no_import_circle():
    cycles = sorted(nx.simple_cycles(import_graph()), key=len)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join([*c, c[0]]) for c in cycles[:10])


def test_rooms_depend_only_on_rooms_below():
    g = import_graph()
    unknown = sorted({room(m) for m in g} - set(RANK))
    assert not unknown, f"rooms with no layer in this test (add them, and to docs/architecture.md): {unknown}"
    upward = sorted(
        f"{a} -> {b}" for a, b in g.edges if room(a) != room(b) and RANK[room(a)] <= RANK[room(b)]
    )
    assert not upward, "imports that do not go down a layer:\n" + "\n".join(upward)


def test_the_checks_catch_a_circle_and_an_upward_arrow(tmp_path):
    """The same functions on a small tree with a circle through an __init__
    and an import inside a function that climbs a layer."""
    pkg = tmp_path / "idn"
    (pkg / "model").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "model" / "__init__.py").write_text("from . import a\n")
    (pkg / "model" / "a.py").write_text("def f():\n    from .. import model\n")
    (pkg / "serving.py").write_text("")
    (pkg / "workloads.py").write_text("def g():\n    import idn.serving\n")
    g = import_graph(pkg)
    assert [sorted(c) for c in nx.simple_cycles(g)] == [["idn.model", "idn.model.a"]]
    assert g.has_edge("idn.workloads", "idn.serving") and RANK["workloads"] < RANK["serving"]


@pytest.mark.parametrize("path", sorted(SRC.rglob("__init__.py")), ids=lambda p: str(p.parent.relative_to(SRC.parent)))
def test_rooms_say_what_they_hold(path):
    """Every package opens with a docstring that says what it holds."""
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc and len(doc) > 40, f"{path}: no docstring saying what the package holds"
