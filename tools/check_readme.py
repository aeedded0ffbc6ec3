#!/usr/bin/env python3
"""Checks that the first C++ block of README.md is examples/hello.cpp, so the
example a reader copies is one CI builds and runs. Exits non-zero if not."""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
readme = (root / "README.md").read_text()
match = re.search(r"```cpp\n(.*?)```", readme, re.S)
hello = (root / "examples" / "hello.cpp").read_text()
if match is None or match.group(1) != hello:
    sys.exit("README.md: the first ```cpp block must be examples/hello.cpp verbatim; copy it over")
print("README.md's example is examples/hello.cpp")
