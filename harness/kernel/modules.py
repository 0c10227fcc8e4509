"""Kernel modules: find a driver and its dependencies in a modules tree, in load order."""

from pathlib import Path

from harness import HarnessError


def norm(name: str) -> str:
    """Module names treat '-' and '_' alike (virtio-rng.ko is module virtio_rng)."""
    return name.replace("-", "_")


def module_name(relpath: str) -> str:
    base = relpath.rsplit("/", 1)[-1]
    return norm(base.split(".ko", 1)[0])


def parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """modules.dep -> {name: (relative path, [dependency names])}."""
    table: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        path, sep, deps = line.partition(":")
        if not sep:
            continue
        table[module_name(path.strip())] = (path.strip(), [module_name(d) for d in deps.split()])
    return table


def parse_builtin(text: str) -> set[str]:
    return {module_name(line.strip()) for line in text.splitlines() if line.strip()}


def load_order(
    wanted: list[str], table: dict[str, tuple[str, list[str]]], builtin: set[str]
) -> list[str]:
    """Relative paths of the modules to insmod for `wanted`, each after its dependencies.

    Built-in drivers need nothing; a name that is neither built in nor in the table raises
    KeyError naming it, so the caller can say which driver the kernel lacks.
    """
    order: list[str] = []
    done: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        name = norm(name)
        if name in done or name in builtin:
            return
        if name in chain:
            raise HarnessError(f"module dependency cycle: {' -> '.join((*chain, name))}")
        if name not in table:
            raise KeyError(name)
        path, deps = table[name]
        for dep in deps:
            visit(dep, (*chain, name))
        done.add(name)
        order.append(path)

    for name in wanted:
        visit(name, ())
    return order


class ModuleTree:
    """A /lib/modules/<release> directory (or a build's modules_install tree)."""

    def __init__(self, root: Path):
        self.root = root
        self.table = parse_modules_dep((root / "modules.dep").read_text())
        builtin = root / "modules.builtin"
        self.builtin = parse_builtin(builtin.read_text()) if builtin.exists() else set()

    def resolve(self, required: list[str], optional: list[str]) -> tuple[list[str], list[str]]:
        """(load-ordered relative paths, optional drivers the kernel lacks).

        A missing required driver is an error naming it; a missing optional one is
        returned so the caller can report it.
        """
        try:
            paths = load_order(required, self.table, self.builtin)
        except KeyError as e:
            raise HarnessError(
                f"the kernel's modules in {self.root} have no driver {e.args[0]!r} "
                "(neither built in nor a module); the guest cannot reach the network"
            ) from None
        missing = []
        for name in optional:
            try:
                extra = load_order([name], self.table, self.builtin)
            except KeyError:
                missing.append(name)
                continue
            paths += [p for p in extra if p not in paths]
        return paths, missing
