#!/usr/bin/env python3
"""Checks that every public declaration in include/weft/*.hpp has a doc comment.

Usage: check_doc_comments.py [HEADER ...]   (default: include/weft/*.hpp)

What counts as a public declaration: anything declared in `namespace weft`
outside `namespace detail` (classes, structs, unions, enums, functions,
function templates, variables, type aliases), and the members of a public
class in its public sections (member functions, nested classes, data
members, static constexpr knobs, member aliases, enumerators of a public
enum). What counts as documented: a `///` line right above the declaration
(above its `template <...>` line, if any), or a trailing `///<` on its first
line.

Heuristics and limits (it reads the text; it does not parse C++):
  - A doc comment covers a group: a declaration right after a documented one,
    with no blank line between them, counts as documented (overload sets,
    `begin()` / `end()` pairs). A blank line ends the group.
  - Exempt: special members that need no words (destructors, copy and move
    constructors and assignments, anything `= default` or `= delete`), the
    awaiter protocol (`await_ready`, `await_suspend`, `await_resume`),
    friend declarations, forward declarations, static_asserts, using-
    declarations without `=` (`using base::base;`), and the code inside
    function bodies.
  - Macros, and anything outside `namespace weft`, are not checked.
  - A `{` at parenthesis depth 0 inside a member initializer list (brace
    initialisation of a member) is taken for the body: the declaration is
    still checked, only what follows the brace is not.
Exits non-zero, listing file:line and the declaration, if anything is
undocumented.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def is_digit_separator(text, i):
    """Whether the ' at text[i] separates digits (1'000, 0x8000'0000u)."""
    j = i
    while j > 0 and (text[j - 1].isalnum() or text[j - 1] in "_'"):
        j -= 1
    return j < i and text[j].isdigit()


def strip_code(text):
    """The text with comments and string/char literals blanked out (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) + len(m.group(1)) + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:end]))
            i = end
        elif c == "'" and is_digit_separator(text, i):
            out.append(c)
            i += 1
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (j - i - 1) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Scope:
    def __init__(self, kind, public, name="", outer_public=False):
        self.kind = kind      # global, namespace, class, enum, hidden (never checked)
        self.public = public  # whether declarations here are checked (a class: in this section)
        self.name = name
        self.outer_public = outer_public  # a class: whether the class itself is public
        self.last_documented = False
        self.last_end_line = -10


EXEMPT = [
    re.compile(r"=\s*(default|delete)\s*;?\s*$"),
    re.compile(r"^\s*(template\s*<.*?>\s*)?friend\b", re.S),
    re.compile(r"^\s*static_assert\b"),
    re.compile(r"^\s*using\s+namespace\b"),
    re.compile(r"^\s*using\s+[\w:<>]+::\w+\s*;?\s*$"),
    re.compile(r"\boperator\s*=\s*\("),
    # The awaiter protocol, which the language defines.
    re.compile(r"\bawait_(ready|suspend|resume)\s*\("),
]


def is_exempt(statement, class_name, opens_body):
    if any(p.search(statement) for p in EXEMPT):
        return True
    head = re.sub(r"^\s*(template\s*<.*?>\s*)?", "", statement, flags=re.S)
    if not opens_body and re.match(r"^(class|struct|union)\s+[\w:]+\s*(<.*>)?\s*;?\s*$", head, re.S):
        return True  # a forward declaration (the definition is checked)
    if class_name:
        name = re.escape(class_name)
        if re.search(r"~\s*" + name + r"\s*\(", head):
            return True  # destructor
        if re.match(r"^(constexpr\s+)?" + name + r"\s*\(\s*(const\s+)?" + name + r"\s*(<[^>]*>)?\s*&", head):
            return True  # copy or move constructor
    return False


def check(path):
    raw_lines = path.read_text().split("\n")
    code = strip_code("\n".join(raw_lines))

    def documented(start_line):
        prev = raw_lines[start_line - 1].strip() if start_line > 0 else ""
        return prev.startswith("///") or "///<" in raw_lines[start_line]

    problems = []
    stack = [Scope("global", False)]
    stmt = []
    stmt_start = None
    parens = 0
    line = 0

    def finish(end_line, opens_body):
        """Classifies the statement collected so far; returns the scope to push if it opens one."""
        nonlocal stmt, stmt_start
        text = "".join(stmt).strip()
        start = stmt_start
        stmt, stmt_start = [], None
        scope = stack[-1]
        if not text:
            return Scope("hidden", False) if opens_body else None
        m_ns = re.match(r"^(inline\s+)?namespace\s+([\w:]*)", text)
        if m_ns:
            if not opens_body:
                return None
            name = m_ns.group(2)
            public = scope.kind in ("global", "namespace") and (scope.public or name == "weft") \
                and name != "detail" and not name.startswith("detail")
            return Scope("namespace" if public else "hidden", public, name)
        head = re.sub(r"^\s*template\s*<.*?>\s*", "", text, flags=re.S)
        m_class = re.match(r"^(class|struct|union)\s+(\[\[[^\]]*\]\]\s*)?([\w:]+)", head)
        m_enum = re.match(r"^enum\s+(class\s+|struct\s+)?(\w+)", head)
        if scope.public:
            if scope.kind == "enum" or (not is_exempt(text, scope.name if scope.kind == "class" else "", opens_body)):
                ok = documented(start) or (scope.last_documented and scope.last_end_line == start - 1)
                if not ok:
                    first = re.sub(r"\s+", " ", text)[:90]
                    problems.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{start + 1}: {first}")
                scope.last_documented = ok
            else:
                scope.last_documented = False
            scope.last_end_line = end_line
        if not opens_body:
            return None
        if m_enum:
            return Scope("enum", scope.public, m_enum.group(2))
        if m_class and "(" not in head.split(":")[0]:
            starts_public = m_class.group(1) in ("struct", "union")  # a class starts private
            return Scope("class", scope.public and starts_public, m_class.group(3).split("::")[-1], scope.public)
        return Scope("hidden", False)

    i = 0
    n = len(code)
    while i < n:
        c = code[i]
        if c == "\n":
            line += 1
            if stmt and not "".join(stmt).strip():
                stmt, stmt_start = [], None
            if stmt:
                stmt.append(" ")
            i += 1
            continue
        scope = stack[-1]
        checking = scope.kind in ("global", "namespace", "class", "enum")
        if not checking:
            if c == "{":
                stack.append(Scope("hidden", False))
            elif c == "}":
                stack.pop()
                stack[-1].last_end_line = line  # a group may go on after a body
            i += 1
            continue
        # Preprocessor lines are skipped whole.
        if not stmt and c == "#":
            j = code.find("\n", i)
            while j > 0 and code[j - 1] == "\\":
                j = code.find("\n", j + 1)
                line += 1
            i = n if j < 0 else j
            continue
        if not stmt and c.isspace():
            i += 1
            continue
        if not stmt:
            stmt_start = line
        if c == "(":
            parens += 1
        elif c == ")":
            parens -= 1
        if parens == 0 and c == ";" and scope.kind != "enum":
            finish(line, False)
        elif parens == 0 and c == "," and scope.kind == "enum":
            finish(line, False)
        elif parens == 0 and c == "{":
            stack.append(finish(line, True))
        elif parens == 0 and c == "}":
            if scope.kind == "enum" and "".join(stmt).strip():
                finish(line, False)
            stmt, stmt_start = [], None
            stack.pop()
            stack[-1].last_end_line = line
        elif parens == 0 and c == ":" and scope.kind == "class" and \
                "".join(stmt).strip() in ("public", "private", "protected") and not code.startswith("::", i):
            scope.public = scope.outer_public and "".join(stmt).strip() == "public"
            scope.last_documented = False
            stmt, stmt_start = [], None
        else:
            stmt.append(c)
        i += 1
    return problems


def main():
    headers = [pathlib.Path(a) for a in sys.argv[1:]] or sorted((ROOT / "include" / "weft").glob("*.hpp"))
    problems = []
    for header in headers:
        problems += check(header.resolve())
    for p in problems:
        print(p)
    if problems:
        sys.exit(f"check_doc_comments.py: {len(problems)} public declarations without a /// comment")
    print(f"check_doc_comments.py: every public declaration in {len(headers)} headers has a doc comment")


if __name__ == "__main__":
    main()
