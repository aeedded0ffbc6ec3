#!/usr/bin/env python3
"""Checks docs/errors.md against the tests: every row names at least one
test (or says why none), and every test it names exists. A test is named as
`<file>: "<Catch2 test case>", "<another>"` (file in tests/, without .cpp),
or as compile_fail/<snippet>.cpp (more snippets of that folder may follow,
comma-separated)."""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
table = (root / "docs" / "errors.md").read_text()
problems = []
rows = 0
for line in table.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if not line.startswith("|") or len(cells) < 3 or set(cells[0]) <= {"-"} or cells[0] in ("Misuse", "Bad input"):
        continue
    rows += 1
    tests = cells[-1]
    named = 0
    if tests.startswith("none:"):
        continue
    for file, names in re.findall(r'(\w+): ((?:"[^"]+"(?:, )?)+)', tests):
        source = root / "tests" / f"{file}.cpp"
        if not source.exists():
            problems.append(f"{source.name} does not exist (row: {cells[0]})")
            continue
        text = source.read_text()
        for name in re.findall(r'"([^"]+)"', names):
            named += 1
            if f'"{name}"' not in text and f'"{name}",' not in text:
                problems.append(f'{file}: no test case "{name}" (row: {cells[0]})')
    snippet = re.search(r"compile_fail/([\w.]+\.cpp(?:, [\w.]+\.cpp)*)", tests)
    if snippet:
        for name in snippet.group(1).split(", "):
            named += 1
            if not (root / "tests" / "compile_fail" / name).exists():
                problems.append(f"tests/compile_fail/{name} does not exist (row: {cells[0]})")
    for file in re.findall(r"^(\w+_test)(?:;|$)", tests):
        named += 1
        if not (root / "tests" / f"{file}.cpp").exists():
            problems.append(f"{file}.cpp does not exist (row: {cells[0]})")
    if named == 0:
        problems.append(f"row names no test: {cells[0]}")
if problems:
    print("docs/errors.md does not match the tests:", *problems, sep="\n  ")
    sys.exit(1)
print(f"docs/errors.md: {rows} rows, every named test exists")
