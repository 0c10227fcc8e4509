"""The package's shape: imports point one way along the data flow, nothing imports in a
cycle, and no module reads the checkout (tests/, or paths above the package)."""

import ast
import re
from pathlib import Path

import harness

PACKAGE = Path(harness.__file__).resolve().parent

#: The stages of the data flow, low to high: a module may import its own stage and lower.
STAGES = [
    "settings",
    "host",
    "kernel",
    "image",
    "guest",
    "agent",
    "verdict",
    "results",
    "suite",
    "coverage",
    "kselftest",
    "bench",
    "cli",
]
#: Below every stage: the package root (errors, version) and the events (harness.events).
BASE = {"harness", "harness.events"}
#: Above every stage: `python -m harness`.
TOP = {"harness.__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(tree: ast.AST, name: str, is_pkg: bool) -> set[str]:
    """harness modules this module imports, at any depth (function-level imports count)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            # `from harness.x import y` may name a module y
            found |= {f"{mod}.{a.name}" for a in node.names}
    return {m for m in found if m == "harness" or m.startswith("harness.")}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    out = {}
    for name, path in modules.items():
        deps = imports(ast.parse(path.read_text()), name, path.name == "__init__.py")
        out[name] = {d for d in deps if d in modules and d != name}
    return out


def stage(module: str) -> int:
    if module in BASE:
        return -1
    if module in TOP:
        return len(STAGES)
    return STAGES.index(module.split(".")[1])


def test_every_subpackage_is_a_stage():
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == set(STAGES)


def test_imports_point_down_the_data_flow():
    wrong = [
        f"{m} imports {d}, a later stage of the data flow"
        for m, deps in graph().items()
        for d in deps
        if stage(d) > stage(m)
    ]
    assert not wrong, "imports against the data flow:\n" + "\n".join(sorted(wrong))


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(g.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d) :] + [d]
            if d not in state and (c := visit(d)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def _levels_up(node: ast.AST) -> int:
    """How many directories above `__file__` an expression like
    Path(__file__).resolve().parent.parent or Path(__file__).parents[2] reaches (0: none)."""
    levels = 0
    while True:
        if isinstance(node, ast.Attribute):
            levels += node.attr == "parent"
            node = node.value
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
            if node.value.attr == "parents" and isinstance(node.slice, ast.Constant):
                levels += node.slice.value + 1
            node = node.value.value
        elif isinstance(node, ast.Call):
            if any(isinstance(a, ast.Name) and a.id == "__file__" for a in node.args):
                return levels
            node = node.func
        else:
            return 0


def checkout_reads(source: str, depth: int) -> list[str]:
    """What in a module `depth` directories below the package root points into a checkout
    rather than the package: a path through tests/ or .ci/, or __file__ climbing out."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.search(r"(^|/)(tests|\.ci)/", node.value):
                found.append(repr(node.value))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            if any(
                isinstance(s, ast.Constant) and s.value in ("tests", ".ci")
                for s in (node.left, node.right)
            ):
                found.append(ast.unparse(node))
        elif isinstance(node, ast.Name) and node.id == "REPO_ROOT":
            found.append("REPO_ROOT")
        elif isinstance(node, (ast.Attribute, ast.Subscript)) and _levels_up(node) > depth:
            found.append(ast.unparse(node))
    return found


def test_no_module_reads_the_checkout():
    hits = {
        str(rel): reads
        for p in PACKAGE.rglob("*.py")
        if (reads := checkout_reads(p.read_text(), len((rel := p.relative_to(PACKAGE)).parts)))
    }
    assert not hits, f"modules that reach outside the package: {hits}"


def test_checkout_reads_are_seen():
    assert checkout_reads('SUITE = ROOT / "tests" / "guest"', 1) == ["ROOT / 'tests'"]
    assert checkout_reads("p = Path(__file__).parents[1]", 1) == ["Path(__file__).parents[1]"]
    assert checkout_reads("p = Path(__file__).parents[1]", 2) == []
    up = "p = Path(__file__).resolve().parent.parent"
    assert checkout_reads(up, 1) == ["Path(__file__).resolve().parent.parent"]
    assert checkout_reads('x = "tests/guest/test_agent.py"', 1) == ["'tests/guest/test_agent.py'"]
    assert checkout_reads('d = {"tests": []}; t = data["tests"]; s = "the tests ran"', 1) == []
    assert checkout_reads("x = REPO_ROOT", 1) == ["REPO_ROOT"]
