#!/usr/bin/env python3
"""Compiles every C++ code block of the documentation, so no example rots.

Usage: check_docs.py [--compiler CXX] [--include DIR] [--jobs N] [FILE.md ...]
(default: c++, include/, and docs/guide.md docs/coming-from-tokio.md).

The convention, kept simple on purpose:
  - A block fenced with ```cpp is a whole translation unit: it has its own
    #include lines and, if it is a program, its own main(). The tool compiles
    it as it is.
  - A block fenced with anything else (```sh, ```text, or ``` alone) is not
    compiled. Write fragments that do not stand alone that way, or better,
    make them whole.
Each block is compiled with `-std=c++20 -fsyntax-only -Wall -Wextra -Werror
-pthread -I<include>` (syntax and semantics, templates instantiated; no code
generated, nothing run). The tool prints one line per block and exits
non-zero if any block fails, showing the compiler's output with the file and
line of the block.
"""
import argparse
import concurrent.futures
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_FILES = ["docs/guide.md", "docs/coming-from-tokio.md"]
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```\s*$", re.S | re.M)


def blocks(path):
    """(first line of the code, code) for each ```cpp block of `path`."""
    text = path.read_text()
    for match in FENCE.finditer(text):
        if match.group(1).strip() != "cpp":
            continue
        line = text.count("\n", 0, match.start(2)) + 1
        yield line, match.group(2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compiler", default="c++")
    parser.add_argument("--include", default=str(ROOT / "include"))
    parser.add_argument("--jobs", type=int, default=2, help="compilers run at once")
    parser.add_argument("files", nargs="*", default=[str(ROOT / f) for f in DEFAULT_FILES])
    args = parser.parse_args()

    jobs = []  # (where, command)
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.files:
            path = pathlib.Path(name)
            for line, code in blocks(path):
                source = pathlib.Path(scratch) / f"snippet_{len(jobs) + 1}.cpp"
                # `#line N` makes the compiler's line numbers those of the .md file.
                # (Not `#line N "file"`: g++ would then take the snippet for a
                # header and warn about lambdas in templates, -Wsubobject-linkage.)
                source.write_text(f"#line {line}\n{code}")
                cmd = [args.compiler, "-std=c++20", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                       "-pthread", "-I", args.include, str(source)]
                jobs.append((f"{path.name}:{line}", cmd))

        def compile_one(job):
            return job[0], subprocess.run(job[1], capture_output=True, text=True)

        failures = 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for where, run in pool.map(compile_one, jobs):
                if run.returncode == 0:
                    print(f"ok      {where}")
                else:
                    failures += 1
                    print(f"FAILED  {where}\n{run.stdout}{run.stderr}")
    total = len(jobs)
    if total == 0:
        sys.exit("check_docs.py: no ```cpp block found; wrong files?")
    if failures:
        sys.exit(f"check_docs.py: {failures} of {total} C++ blocks do not compile")
    print(f"check_docs.py: all {total} C++ blocks compile")


if __name__ == "__main__":
    main()
