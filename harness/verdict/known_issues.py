"""Known kernel bugs: load the reviewed list (known_issues.yaml) and match runs against it.

Pure: reads the one file it is given and nothing else. Every error names file:line.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness import HarnessError

DEFAULT_PATH = Path(__file__).with_name("known_issues.yaml")

_REQUIRED = ("workload", "mem", "kernels", "fix", "looks_like")
_OPTIONAL = ("checks", "fix_commit")
_PREFIX = re.compile(r"\d+(\.\d+)*")
_COMPARISON = re.compile(r"(<=|>=|==|<|>)(\d+(?:\.\d+)*)")


class KnownIssuesError(HarnessError):
    """The known-issues file is malformed; the message starts with file:line."""


def release_version(release: str) -> tuple[int, ...]:
    """The leading numbers of a kernel release: "6.1.0-56-amd64" -> (6, 1, 0)."""
    m = _PREFIX.match(release.strip())
    return tuple(int(x) for x in m.group(0).split(".")) if m else ()


def _cmp(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    width = max(len(a), len(b))
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    return (a > b) - (a < b)


_OPS = {
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
    "==": lambda c: c == 0,
}


def kernel_spec_error(spec: str) -> str | None:
    """Why spec is not a valid `kernels` item, or None."""
    if _PREFIX.fullmatch(spec):
        return None
    terms = spec.split()
    if terms and all(_COMPARISON.fullmatch(t) for t in terms):
        return None
    return (
        f'kernel spec {spec!r} is neither a release prefix like "6.1"'
        ' nor comparisons like "<6.4" or ">=5.19 <6.4"'
    )


def spec_matches(spec: str, release: str) -> bool:
    version = release_version(release)
    if not version:
        return False
    if _PREFIX.fullmatch(spec):
        prefix = release_version(spec)
        return version[: len(prefix)] == prefix
    for term in spec.split():
        op, ver = _COMPARISON.fullmatch(term).groups()
        ref = release_version(ver)
        # Compare at the spec's precision: "<=6.1" includes 6.1.99, "<6.4" excludes 6.4.2.
        if not _OPS[op](_cmp(version[: len(ref)], ref)):
            return False
    return True


@dataclass(frozen=True)
class KnownIssue:
    workload: str
    mem: str
    kernels: tuple[str, ...]
    fix: str
    looks_like: str
    checks: tuple[str, ...] = ()
    fix_commit: str | None = None
    source: str = ""  # file:line of the entry

    def affects(self, kernel_release: str) -> bool:
        return any(spec_matches(s, kernel_release) for s in self.kernels)

    def explains(self, failed_checks: Iterable[str]) -> bool:
        """True if every failed check is one this bug makes fail (so also for none: a pass)."""
        failed = set(failed_checks)
        return not self.checks or failed <= set(self.checks)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _scalar(path: Path, node: yaml.Node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or not node.value.strip():
        raise KnownIssuesError(f"{path}:{_line(node)}: {what} must be a non-empty string")
    return node.value.strip()


def _string_list(path: Path, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node]]:
    """A string or a non-empty list of strings, each with its node (for its line)."""
    if isinstance(node, yaml.ScalarNode):
        return [(_scalar(path, node, what), node)]
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise KnownIssuesError(f"{path}:{_line(node)}: {what} must be a string or a non-empty list")
    return [(_scalar(path, item, f"each item of {what}"), item) for item in node.value]


def _fields(path: Path, node: yaml.Node) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        raise KnownIssuesError(f"{path}:{_line(node)}: each known issue must be a mapping")
    fields: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        key = _scalar(path, key_node, "a key")
        if key not in _REQUIRED + _OPTIONAL:
            allowed = ", ".join(_REQUIRED + _OPTIONAL)
            raise KnownIssuesError(
                f"{path}:{_line(key_node)}: unknown field {key!r} (allowed: {allowed})"
            )
        if key in fields:
            raise KnownIssuesError(f"{path}:{_line(key_node)}: field {key!r} given twice")
        fields[key] = value_node
    missing = [k for k in _REQUIRED if k not in fields]
    if missing:
        raise KnownIssuesError(f"{path}:{_line(node)}: known issue lacks {', '.join(missing)}")
    return fields


def _issue(path: Path, node: yaml.Node) -> KnownIssue:
    fields = _fields(path, node)
    kernels = _string_list(path, fields["kernels"], "kernels")
    for spec, spec_node in kernels:
        error = kernel_spec_error(spec)
        if error:
            raise KnownIssuesError(f"{path}:{_line(spec_node)}: {error}")
    checks = _string_list(path, fields["checks"], "checks") if "checks" in fields else []
    commit = fields.get("fix_commit")
    return KnownIssue(
        workload=_scalar(path, fields["workload"], "workload"),
        mem=_scalar(path, fields["mem"], "mem"),
        kernels=tuple(spec for spec, _ in kernels),
        fix=_scalar(path, fields["fix"], "fix"),
        looks_like=_scalar(path, fields["looks_like"], "looks_like"),
        checks=tuple(name for name, _ in checks),
        fix_commit=_scalar(path, commit, "fix_commit") if commit is not None else None,
        source=f"{path}:{_line(node)}",
    )


def load_known_issues(path: Path = DEFAULT_PATH) -> list[KnownIssue]:
    """Parse the known-issues file; KnownIssuesError names file:line on any problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise KnownIssuesError(f"{path}: cannot read the known-issues file: {e.strerror}") from None
    try:
        # compose, not load: nodes keep their line numbers, scalars their exact text ("6.10").
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{mark.line + 1}:{mark.column + 1}" if mark else "?"
        raise KnownIssuesError(f"{path}:{where}: invalid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise KnownIssuesError(f"{path}: invalid YAML: {e}") from None
    if root is None:
        return []
    if not isinstance(root, yaml.SequenceNode):
        raise KnownIssuesError(f"{path}:{_line(root)}: the file must be a list of known issues")
    return [_issue(path, item) for item in root.value]


def match(
    issues: Iterable[KnownIssue],
    workload: str,
    mem: str,
    kernel_release: str,
    failed_checks: Iterable[str] | None = None,
) -> KnownIssue | None:
    """The known issue for this case on this kernel, or None.

    With failed_checks (the names of the run's failed checks), an issue only matches if it
    explains all of them, so an unrelated failure of a listed case is not excused.
    """
    failed = None if failed_checks is None else list(failed_checks)
    for issue in issues:
        if issue.workload != workload or issue.mem != mem or not issue.affects(kernel_release):
            continue
        if failed is None or issue.explains(failed):
            return issue
    return None
