"""Kconfig text: .config files and fragments, and why a requested option was dropped.

Pure parsing (fragments, .config files, the merge that scripts/kconfig/merge_config.sh
does) and just enough of the Kconfig language to say why olddefconfig did not keep an
option: unmet dependencies, hidden prompts, selects. The only file access is the walk of
a source tree's Kconfig files, and that goes through a read function the tests replace.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness import UsageError

#: A fragment comment that makes the next option optional: a tree without it is accepted.
OPTIONAL_MARK = "# optional:"

# =========================================================================================
# Config text: .config files and fragments
# =========================================================================================

_SET = re.compile(r"CONFIG_([A-Za-z0-9_]+)=(.*)")
_UNSET = re.compile(r"# CONFIG_([A-Za-z0-9_]+) is not set")
_VALUE = re.compile(r'[ymn]|"(?:[^"\\]|\\.)*"|-?\d+|0[xX][0-9a-fA-F]+')


@dataclass(frozen=True)
class Option:
    """One requested option of a fragment."""

    name: str  # without the CONFIG_ prefix
    value: str  # y, m, n, a quoted string, or a number as written
    where: str  # "file:line"
    optional: str | None = None  # why the option may be missing from a tree

    def line(self) -> str:
        if self.value == "n":
            return f"# CONFIG_{self.name} is not set"
        return f"CONFIG_{self.name}={self.value}"


def _option_line(line: str) -> tuple[str, str] | None:
    """(name, value) of a stripped `CONFIG_NAME=VALUE` or `# CONFIG_NAME is not set` ("n")
    line; None for any other line."""
    if m := _SET.fullmatch(line):
        return m[1], m[2]
    if m := _UNSET.fullmatch(line):
        return m[1], "n"
    return None


def parse_config(text: str) -> dict[str, str]:
    """A .config as {name: value}; "is not set" lines give "n"."""
    return dict(opt for line in text.splitlines() if (opt := _option_line(line.strip())))


def parse_fragment(text: str, name: str) -> list[Option]:
    """A Kconfig fragment's options, in order. Malformed lines are errors (file:line), since
    Kconfig itself would skip them with a warning nobody reads."""
    options: list[Option] = []
    optional: str | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{name}:{n}"
        if opt := _option_line(line):
            symbol, value = opt[0], opt[1].strip()
            if not _VALUE.fullmatch(value):
                raise UsageError(
                    f"{where}: CONFIG_{symbol}={value}: a value must be y, m, n, a number or "
                    'a "quoted string"'
                )
            options.append(Option(symbol, value, where, optional))
            optional = None
        elif line.startswith(OPTIONAL_MARK):
            optional = line[len(OPTIONAL_MARK) :].strip() or "optional"
        elif line and not line.startswith("#"):
            raise UsageError(
                f"{where}: {line!r} is not a Kconfig line; expected CONFIG_NAME=VALUE, "
                "'# CONFIG_NAME is not set' or a # comment"
            )
    return options


def merge_fragments(fragments: Iterable[list[Option]]) -> tuple[dict[str, Option], list[str]]:
    """All options, the later fragment winning; and a note for each value overridden."""
    merged: dict[str, Option] = {}
    notes: list[str] = []
    for options in fragments:
        for opt in options:
            old = merged.get(opt.name)
            if old and old.value != opt.value:
                notes.append(f"{opt.where}: {opt.line()} overrides {old.where}: {old.line()}")
            merged[opt.name] = opt
    return merged, notes


def apply_options(base_text: str, requested: dict[str, Option]) -> str:
    """The base .config with the requested options in place of its own lines for them
    (what scripts/kconfig/merge_config.sh does); olddefconfig then resolves the rest."""
    kept = []
    for line in base_text.splitlines():
        m = _SET.fullmatch(line.strip()) or _UNSET.fullmatch(line.strip())
        if not (m and m[1] in requested):
            kept.append(line)
    kept.append("# -- merged by uffd-harness kernel build --")
    kept += [opt.line() for opt in requested.values()]
    return "\n".join(kept) + "\n"


def _same_value(wanted: str, got: str | None) -> bool:
    if wanted == "n":
        return got in (None, "n")
    if got is None:
        return False
    try:
        return int(wanted, 0) == int(got, 0)
    except ValueError:
        return wanted == got


@dataclass(frozen=True)
class Dropped:
    option: Option
    got: str | None  # the final value; None when the final config has no line for it
    why: tuple[str, ...] = ()

    def describe(self) -> str:
        got = "absent" if self.got is None else ("not set" if self.got == "n" else self.got)
        head = f"CONFIG_{self.option.name}={self.option.value} ({self.option.where}): got {got}"
        return "\n".join([head, *(f"    {w}" for w in self.why)])


def find_dropped(requested: dict[str, Option], final: dict[str, str]) -> list[Dropped]:
    """Requested options whose value did not survive olddefconfig."""
    return [
        Dropped(opt, final.get(name))
        for name, opt in requested.items()
        if not _same_value(opt.value, final.get(name))
    ]


# =========================================================================================
# Kconfig: just enough of the language to say why an option was dropped
# =========================================================================================


@dataclass
class Definition:
    where: str
    depends: list[str] = field(default_factory=list)  # own and inherited (if/menu/choice)
    prompts: list[str] = field(default_factory=list)  # prompt conditions; "" = always
    defaults: list[str] = field(default_factory=list)


@dataclass
class Symbol:
    name: str
    definitions: list[Definition] = field(default_factory=list)
    selected_by: list[str] = field(default_factory=list)  # "FOO" or "FOO if COND"


_ENTRY_WORDS = {"config", "menuconfig"}
_TYPE_WORDS = {"bool", "tristate", "string", "int", "hex"}
_SOURCE_WORDS = {"source", "rsource", "osource", "orsource"}
_DEPENDS = re.compile(r"(?:depends\s+on|visible\s+if)\s+(.*)")


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) with backslash continuations joined."""
    pending, start = "", 0
    for n, line in enumerate(text.splitlines(), 1):
        if not pending:
            start = n
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending


def _indent(line: str) -> int:
    return len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())


def _split_if(rest: str) -> tuple[str, str]:
    """'"prompt" if COND' or 'EXPR if COND' -> (head, COND)."""
    m = re.match(r'^((?:"(?:[^"\\]|\\.)*"|[^"])*?)\s+if\s+(.*)$', rest)
    return (m[1].strip(), m[2].strip()) if m else (rest.strip(), "")


def _statements(text: str) -> Iterator[tuple[int, str, str]]:
    """(line number, keyword, rest) of each Kconfig statement, help texts and comments left
    out. A help text ends at the first line indented less than its own first line."""
    help_indent: int | None = None
    in_help = False
    for n, raw in _logical_lines(text):
        if in_help:
            if not raw.strip():
                continue
            if help_indent is None:
                help_indent = _indent(raw)
                continue
            if _indent(raw) >= help_indent:
                continue
            in_help = False
        line = raw.strip() if '"' in raw else raw.split("#", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.replace("\t", " ").partition(" ")
        if word in ("help", "---help---"):
            in_help, help_indent = True, None
            continue
        yield n, word, rest.strip()


class KconfigIndex:
    """Symbols of a kernel tree, walked from the top Kconfig through every `source`.

    `read(path)` returns a file's text (relative to the tree) or None; taking a function
    keeps the walk testable on a few recorded Kconfig snippets.
    """

    def __init__(self, read: Callable[[str], str | None], srcarch: str = "x86"):
        self.read = read
        self.srcarch = srcarch
        self.symbols: dict[str, Symbol] = {}

    @classmethod
    def of_tree(cls, src: Path, srcarch: str = "x86") -> KconfigIndex:
        def read(rel: str) -> str | None:
            try:
                return (src / rel).read_text(errors="replace")
            except OSError:
                return None

        index = cls(read, srcarch)
        index.walk("Kconfig", [])
        return index

    def symbol(self, name: str) -> Symbol:
        return self.symbols.setdefault(name, Symbol(name))

    def walk(self, path: str, inherited: list[str]) -> None:
        text = self.read(path)
        if text is None:
            return
        stack: list[list[str]] = []  # the conditions of each open if/menu/choice
        entry: Definition | None = None  # the config entry whose attributes follow
        block: list[str] | None = None  # the menu/choice whose `depends on` follows
        owner = ""
        for n, word, rest in _statements(text):
            conds = inherited + [c for frame in stack for c in frame]
            if word in _ENTRY_WORDS:
                owner, block = rest, None
                entry = Definition(f"{path}:{n}", depends=list(conds))
                self.symbol(rest).definitions.append(entry)
            elif word in ("if", "menu", "choice"):
                stack.append([rest] if word == "if" else [])
                entry, block = None, (None if word == "if" else stack[-1])
            elif word in ("endif", "endmenu", "endchoice"):
                if stack:
                    stack.pop()
                entry = block = None
            elif word in _SOURCE_WORDS:
                entry = block = None
                self.walk(self._source_path(path, word, rest), conds)
            elif word in ("comment", "mainmenu"):
                entry = block = None
            elif m := _DEPENDS.fullmatch(f"{word} {rest}"):
                target = entry.depends if entry is not None else block
                if target is not None:
                    target.append(m[1])
            elif entry is not None:
                self._attribute(entry, owner, word, rest)

    def _source_path(self, path: str, word: str, rest: str) -> str:
        target = rest.strip('"').replace("$(SRCARCH)", self.srcarch)
        return str(Path(path).parent / target) if word in ("rsource", "orsource") else target

    def _attribute(self, entry: Definition, owner: str, word: str, rest: str) -> None:
        if word in _TYPE_WORDS or word == "prompt":
            head, cond = _split_if(rest)
            if head.startswith('"'):
                entry.prompts.append(cond)
        elif word in ("def_bool", "def_tristate", "default"):
            entry.defaults.append(rest)
        elif word == "select":
            target, cond = _split_if(rest)
            self.symbol(target).selected_by.append(f"{owner} if {cond}" if cond else owner)


# -- Kconfig expressions -------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(\|\||&&|!=|<=|>=|[=<>!()]|"(?:[^"\\]|\\.)*"|\$\([^)]*\)|[\w.-]+)')


def _tokens(expr: str) -> list[str]:
    out, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            break
        out.append(m[1])
        pos = m.end()
    return out


class _Expr:
    """A Kconfig expression evaluated to 0 (n), 1 (m) or 2 (y) against a config."""

    def __init__(self, expr: str, values: dict[str, str]):
        self.toks = _tokens(expr)
        self.pos = 0
        self.values = values

    def value(self) -> int:
        try:
            return self._or()
        except IndexError:
            return 2  # unparsable: assume met rather than blame the wrong thing

    def _peek(self) -> str | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def _next(self) -> str:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def _or(self) -> int:
        v = self._and()
        while self._peek() == "||":
            self._next()
            v = max(v, self._and())
        return v

    def _and(self) -> int:
        v = self._not()
        while self._peek() == "&&":
            self._next()
            v = min(v, self._not())
        return v

    def _not(self) -> int:
        if self._peek() == "!":
            self._next()
            return 2 - self._not()
        return self._compare()

    def _compare(self) -> int:
        if self._peek() == "(":
            self._next()
            v = self._or()
            if self._peek() == ")":
                self._next()
            return v
        left = self._next()
        op = self._peek()
        if op in ("=", "!=", "<", ">", "<=", ">="):
            self._next()
            return 2 if _compare(self._raw(left), op, self._raw(self._next())) else 0
        return self._tristate(left)

    def _raw(self, tok: str) -> str:
        if tok.startswith('"'):
            return tok[1:-1]
        if tok in ("y", "m", "n"):
            return tok
        if tok not in self.values and re.fullmatch(r"-?\d+|0[xX][0-9a-fA-F]+", tok):
            return tok  # a number constant
        return self.values.get(tok, "n").strip('"')

    def _tristate(self, tok: str) -> int:
        if tok.startswith("$("):
            return 2  # a shell/compiler test: Kconfig already ran it, assume met
        return {"y": 2, "m": 1}.get(self._raw(tok), 0)


def _compare(a: str, op: str, b: str) -> bool:
    if op in ("=", "!="):
        return (a == b) == (op == "=")
    try:
        x, y = int(a, 0), int(b, 0)
    except ValueError:
        return False
    return {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]


def eval_expr(expr: str, values: dict[str, str]) -> int:
    return _Expr(expr, values).value()


def _annotate(expr: str, values: dict[str, str]) -> str:
    """'A && B' -> 'A && B [A=y, B=n]', like menuconfig's help does."""
    names = [t for t in _tokens(expr) if re.fullmatch(r"[A-Z_][A-Z0-9_]*", t)]
    shown = ", ".join(f"{s}={values.get(s, 'n')}" for s in dict.fromkeys(names))
    return f"{expr} [{shown}]" if shown else expr


def _selector_on(selector: str, values: dict[str, str]) -> bool:
    name, _, cond = selector.partition(" if ")
    return eval_expr(f"{name} && ({cond})" if cond else name, values) > 0


def _setters(sym: Symbol, d: Definition, values: dict[str, str]) -> str:
    parts = []
    if sym.selected_by:
        parts.append(
            "a select from " + ", ".join(_annotate(s, values) for s in sym.selected_by[:5])
        )
    if d.defaults:
        parts.append("its default " + " / ".join(_annotate(e, values) for e in d.defaults))
    return " or ".join(parts) or "nothing (it is always off here)"


def explain(sym: Symbol | None, wanted: str, values: dict[str, str]) -> list[str]:
    """Why Kconfig did not give `sym` the wanted value, as far as its definitions tell."""
    if sym is None or not sym.definitions:
        return ["no such option in this tree (misspelt, renamed or removed?)"]
    if wanted == "n":
        on = [s for s in sym.selected_by if _selector_on(s, values)]
        if on:
            return [f"forced on by a select from {', '.join(on)}"]
        fixed = [d for d in sym.definitions if not d.prompts]
        return [f"no prompt ({d.where}): set by {_setters(sym, d, values)}" for d in fixed] or [
            "no select or hidden prompt found that keeps it on (a choice?)"
        ]
    need = 2 if wanted == "y" else 1
    why: list[str] = []
    for d in sym.definitions:
        unmet = [e for e in d.depends if eval_expr(e, values) < need]
        if unmet:
            why += [f"unmet: depends on {_annotate(e, values)} ({d.where})" for e in unmet]
        elif not d.prompts:
            why.append(f"no prompt ({d.where}): set only by {_setters(sym, d, values)}")
        elif all(c and eval_expr(c, values) == 0 for c in d.prompts):
            conds = " or ".join(_annotate(c, values) for c in d.prompts)
            why.append(f"unmet: its prompt needs {conds} ({d.where})")
    return why or ["no unmet dependency found (a choice, a range, or a select elsewhere?)"]


def verify(
    requested: dict[str, Option], final: dict[str, str], src: Path
) -> tuple[list[Dropped], list[Dropped]]:
    """(fatal, tolerated) dropped options, each with Kconfig's reasons. Tolerated: marked
    optional in its fragment and absent from this tree."""
    dropped = find_dropped(requested, final)
    if not dropped:
        return [], []
    index = KconfigIndex.of_tree(src)
    fatal, tolerated = [], []
    for d in dropped:
        sym = index.symbols.get(d.option.name)
        d = Dropped(d.option, d.got, tuple(explain(sym, d.option.value, final)))
        absent = sym is None or not sym.definitions
        (tolerated if absent and d.option.optional else fatal).append(d)
    return fatal, tolerated
