"""Which lines of a kernel C file are userfaultfd-related: the rule, written once.

In the files that exist for userfaultfd (fs/userfaultfd.c, mm/userfaultfd.c,
include/linux/userfaultfd_k.h) every line counts. In the MM files that carry the uffd-wp
bit as one concern among many, a line is related when

- it belongs to a function whose name says it is there for userfaultfd (`FUNCTION`:
  uffd, userfault, pte_marker, and the mfill/mcopy helpers behind UFFDIO_COPY and
  UFFDIO_CONTINUE in each memory type's file), or
- it belongs to a statement that names userfaultfd (`TOKEN`: `userfaultfd_wp(vma)`,
  `pte_swp_uffd_wp()`, `VM_UFFD_WP`, `make_pte_marker()`, `handle_userfault()`), or
- it is in a branch such a statement's condition decides (the `if` arm, and a plain
  `else` arm when the `if` heads its chain; not an `else if` that follows, which tests
  something else, nor the final `else` of a chain), since a branch taken for uffd-wp
  state is where the bit is carried or dropped.

The parse is lexical: comments, string literals and preprocessor lines are blanked, and
of `#if/#else/#endif` only the first branch is read (so that braces balance). A
function's lines run from its name to its closing brace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TOKEN = re.compile(r"uffd|userfault|pte_marker", re.I)
FUNCTION = re.compile(r"uffd|userfault|pte_marker|mfill_atomic|mcopy_atomic", re.I)
#: Macros written like calls in a declaration that are not the function's name.
_ATTRIBUTES = {
    "__attribute__",
    "__printf",
    "__scanf",
    "__releases",
    "__acquires",
    "__must_hold",
    "__section",
    "__aligned",
    "__alloc_size",
}
_IDENT_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
_CONTROL = re.compile(r"\b(if|while|for|switch)\s*$")
_LEXEMES = re.compile(r"""//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'""", re.S)


@dataclass(frozen=True)
class Function:
    name: str
    first: int  # line of the name (1-based)
    last: int  # line of the closing brace
    body: tuple[int, int]  # offsets of `{` and of the matching `}` in the text


def _spaces(m: re.Match[str]) -> str:
    return re.sub(r"[^\n]", " ", m[0])


def blank(text: str) -> str:
    """The text with comments, literals and preprocessor lines (and every `#else`/`#elif`
    branch) replaced by spaces; same length, same lines."""
    text = _LEXEMES.sub(_spaces, text)
    lines = text.split("\n")
    out: list[str] = []
    # One entry per open #if: whether this branch is being dropped.
    dropping: list[bool] = []
    continued = False
    for line in lines:
        directive = line.lstrip().startswith("#") or continued
        continued = line.rstrip().endswith("\\") and (directive or continued)
        if directive:
            word = re.match(r"\s*#\s*(\w+)", line)
            kw = word[1] if word else ""
            if kw in ("if", "ifdef", "ifndef"):
                dropping.append(bool(dropping and dropping[-1]))
            elif kw in ("else", "elif") and dropping:
                dropping[-1] = True
            elif kw == "endif" and dropping:
                dropping.pop()
            out.append(" " * len(line))
        elif dropping and dropping[-1]:
            out.append(" " * len(line))
        else:
            out.append(line)
    return "\n".join(out)


def _match_close(text: str, i: int) -> int:
    """Offset of the bracket closing the one at text[i] (or len(text))."""
    pairs = {"(": ")", "{": "}", "[": "]"}
    stack = [pairs[text[i]]]
    for j in range(i + 1, len(text)):
        c = text[j]
        if c in pairs:
            stack.append(pairs[c])
        elif c in ")}]" and c == stack[-1]:
            stack.pop()
            if not stack:
                return j
    return len(text)


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _name(decl: str) -> str | None:
    """The function a declaration (text before a top-level `{`) defines, if it is one."""
    decl = decl.strip()
    if not decl.endswith(")") or "=" in decl:
        return None
    for m in _IDENT_CALL.finditer(decl):
        name = m[1]
        if name in _ATTRIBUTES:
            continue
        if re.fullmatch(r"SYSCALL_DEFINE\d", name):
            arg = re.match(r"\s*(\w+)", decl[m.end() :])
            return f"sys_{arg[1]}" if arg else name
        return name
    return None


def functions(text: str) -> list[Function]:
    """Every function definition in C source text (blank() is applied here)."""
    code = blank(text)
    found: list[Function] = []
    i, decl_start = 0, 0
    while i < len(code):
        c = code[i]
        if c in ";}":
            decl_start = i + 1
        elif c == "{":
            end = _match_close(code, i)
            name = _name(code[decl_start:i])
            if name:
                m = re.search(rf"\b{re.escape(name)}\s*\(", code[decl_start:i])
                first = _line(code, decl_start + (m.start() if m else 0))
                found.append(Function(name, first, _line(code, end), (i, end)))
            # Not a function (a struct body, an initializer): skipped whole all the same.
            i, decl_start = end + 1, end + 1
            continue
        i += 1
    return found


def _statement_end(code: str, i: int, stop: int, with_else: bool = True) -> int:
    """Offset just past the statement starting at or after i (a block, a control
    statement with its body and, with_else, a plain else arm, or a simple statement up
    to `;`)."""
    while i < stop and code[i].isspace():
        i += 1
    if i >= stop:
        return stop
    if code[i] == "{":
        return min(_match_close(code, i) + 1, stop)
    m = re.match(r"(if|while|for|switch)\s*\(", code[i:stop])
    if m:
        close = _match_close(code, i + m.end() - 1)
        end = _statement_end(code, close + 1, stop)
        if m[1] == "if":
            # A plain else is the other side of the same test; an `else if` tests
            # something else.
            e = re.match(r"\s*else\b(?!\s*if\b)", code[end:stop])
            if e and with_else:
                end = _statement_end(code, end + e.end(), stop)
        return end
    m = re.match(r"do\b", code[i:stop])
    if m:
        end = _statement_end(code, i + m.end(), stop)
        semi = code.find(";", end, stop)
        return stop if semi < 0 else semi + 1
    j = i
    while j < stop:
        if code[j] in "([{":
            j = _match_close(code, j) + 1
            continue
        if code[j] in ";}":
            return j + 1 if code[j] == ";" else j
        j += 1
    return stop


def _statement_start(code: str, p: int, floor: int) -> int:
    """Offset where the statement holding offset p begins (after `;`, `{` or `}` at the
    nesting level of p, skipping the insides of parentheses)."""
    depth = 0
    j = p - 1
    while j > floor:
        c = code[j]
        if c == ")":
            depth += 1
        elif c == "(":
            if depth == 0:
                # p is inside this parenthesis: a condition's (the statement is the whole
                # if/while, arms included) or a call's argument list (look further out).
                head = _CONTROL.search(code, floor, j)
                if head:
                    return head.start()
            else:
                depth -= 1
        elif depth == 0 and c in ";{}":
            return j + 1
        j -= 1
    return floor + 1


def _span_lines(code: str, start: int, end: int) -> range:
    while start < end and code[start].isspace():
        start += 1
    return range(_line(code, start), _line(code, max(start, end - 1)) + 1)


def related_lines(text: str, whole: bool = False) -> dict[int, str]:
    """Line number -> the function it is in, for every userfaultfd-related line of the
    source `text` (every line of every function when `whole`)."""
    code = blank(text)
    related: dict[int, str] = {}
    for f in functions(text):
        if whole or FUNCTION.search(f.name):
            related.update(dict.fromkeys(range(f.first, f.last + 1), f.name))
            continue
        lo, hi = f.body
        for m in TOKEN.finditer(code, lo, hi):
            start = _statement_start(code, m.start(), lo)
            # The last else of an if/else-if chain is decided by every test before it,
            # not only by the uffd one.
            chained = re.search(r"\belse\s*$", code[lo:start]) is not None
            end = _statement_end(code, start, hi, with_else=not chained)
            related.update(dict.fromkeys(_span_lines(code, start, end), f.name))
    return related
