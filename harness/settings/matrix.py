"""A nightly matrix: kernels x guest configurations (x a suite filter), read from YAML with
errors that name file:line. Pure: resolving a kernel entry to a bzImage is the nightly
command's job (harness/cli/nightly.py).

    kernels:
      - debian: amd64                 # an installed Debian kernel, by flavour (or release)
      - path: build/min/arch/x86/boot/bzImage
      - name: zeropage-bug            # built by `kernel build`, cached by its inputs
        build: {src: /usr/src/linux, base: tinyconfig,
                fragments: [kernel-configs/minimal.config], patches: [bug.patch]}
    configs:
      - name: default                 # the guest settings' defaults
      - name: one-node
        settings: {numa: 1, smp: 1}   # any --guest-config key
    filter: "wp-basic or missing"     # optional: a pytest -k expression
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness import UsageError
from harness.settings.merge import FILE_KEYS, checked

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
KERNEL_KINDS = ("path", "debian", "build")
BUILD_KEYS = ("src", "base", "fragments", "patches")


@dataclass(frozen=True)
class KernelEntry:
    name: str
    kind: str  # one of KERNEL_KINDS
    value: str = ""  # the path, or the Debian flavour / release
    build: dict = field(default_factory=dict)  # src, base, fragments, patches (absolute)


@dataclass(frozen=True)
class ConfigEntry:
    name: str
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    kernel: KernelEntry
    config: ConfigEntry

    @property
    def name(self) -> str:
        return f"{self.kernel.name}--{self.config.name}"


@dataclass(frozen=True)
class Matrix:
    path: Path
    kernels: list[KernelEntry]
    configs: list[ConfigEntry]
    filter: str = ""

    def cells(self) -> list[Cell]:
        return [Cell(k, c) for k in self.kernels for c in self.configs]


def shard(cells: list[Cell], spec: str) -> list[Cell]:
    """`I/N`: every Nth cell from the Ith (1-based), so shards split the matrix evenly."""
    m = re.fullmatch(r"(\d+)/(\d+)", spec.strip())
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise UsageError(f"--shard {spec}: expected I/N with 1 <= I <= N, e.g. 1/2")
    i, n = int(m.group(1)), int(m.group(2))
    return cells[i - 1 :: n]


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise UsageError(f"{where} name {value!r}: letters, digits, '.', '_' and '-' only")
    return value


def _kernel(item: object, where: str, base: Path) -> KernelEntry:
    if not isinstance(item, dict):
        raise UsageError(f"{where} a kernel is a mapping with one of: {', '.join(KERNEL_KINDS)}")
    kinds = [k for k in KERNEL_KINDS if k in item]
    unknown = set(item) - {*KERNEL_KINDS, "name"}
    if len(kinds) != 1 or unknown:
        raise UsageError(
            f"{where} a kernel needs exactly one of {', '.join(KERNEL_KINDS)} (and an optional "
            f"name); got {', '.join(map(str, item))}"
        )
    kind = kinds[0]
    if kind == "build":
        spec = item["build"]
        if not isinstance(spec, dict) or "src" not in spec or set(spec) - set(BUILD_KEYS):
            raise UsageError(
                f"{where} build: a mapping of src (required), base, fragments, patches"
            )
        build = {
            "src": str((base / str(spec["src"])).resolve()),
            "base": str(spec.get("base", "tinyconfig")),
            "fragments": [str((base / str(f)).resolve()) for f in spec.get("fragments", [])],
            "patches": [str((base / str(p)).resolve()) for p in spec.get("patches", [])],
        }
        default = f"build-{Path(build['src']).name}"
        return KernelEntry(_name(item.get("name", default), where), kind, "", build)
    value = str(item[kind])
    if kind == "path":
        value = str((base / value).resolve())
        default = Path(value).parent.parent.parent.parent.name or "kernel"
    else:
        default = f"debian-{value}"
    return KernelEntry(_name(item.get("name", default), where), kind, value)


def _config(item: object, where: str) -> ConfigEntry:
    if not isinstance(item, dict) or "name" not in item or set(item) - {"name", "settings"}:
        raise UsageError(f"{where} a guest configuration is a mapping: name, settings")
    settings = item.get("settings") or {}
    if not isinstance(settings, dict):
        raise UsageError(f"{where} settings: a mapping of guest settings, e.g. `mem: 3G`")
    values = {}
    for key, value in settings.items():
        if key not in FILE_KEYS or key == "kernel":
            known = ", ".join(k for k in FILE_KEYS if k != "kernel")
            raise UsageError(f"{where} unknown guest setting {key!r}; known: {known}")
        values[key] = checked(FILE_KEYS[key], value, f"{where} {key}")
    return ConfigEntry(_name(item["name"], where), values)


def load_matrix(path: Path) -> Matrix:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except OSError as e:
        raise UsageError(f"{path}: cannot read the matrix ({e.strerror})") from None
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UsageError(f"{where}: malformed matrix: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise UsageError(f"{path}:1: a matrix is a mapping: kernels, configs, filter")
    lines = {k.value: (k.start_mark.line + 1, v) for k, v in node.value}
    unknown = set(data) - {"kernels", "configs", "filter"}
    if unknown:
        raise UsageError(f"{path}: unknown keys {sorted(unknown)}; known: kernels, configs, filter")

    def items(key: str) -> list[tuple[object, str]]:
        line, seq = lines.get(key, (1, None))
        values = data.get(key)
        if not isinstance(values, list) or not values:
            raise UsageError(f"{path}:{line}: {key}: a non-empty list")
        marks = [v.start_mark.line + 1 for v in getattr(seq, "value", [])] or [line] * len(values)
        return [(v, f"{path}:{m}:") for v, m in zip(values, marks, strict=False)]

    base = path.parent
    kernels = [_kernel(v, where, base) for v, where in items("kernels")]
    configs = (
        [_config(v, where) for v, where in items("configs")]
        if "configs" in data
        else [ConfigEntry("default")]
    )
    for what, entries in (("kernel", kernels), ("config", configs)):
        names = [e.name for e in entries]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise UsageError(
                f"{path}: {what} names must differ; repeated: {', '.join(sorted(dup))}"
            )
    return Matrix(path, kernels, configs, str(data.get("filter") or ""))
