#!/usr/bin/env bash
# Build the `release` preset and run the flagship example,
# examples/work_stealing.cpp, which prints what each worker did. Installs
# what is missing when run as root. Arguments go to the example.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/lib/deps.sh
weft_require_packages "${WEFT_BUILD_PACKAGES[@]}"

cmake --preset release
cmake --build --preset release -j "$(nproc)" --target work_stealing
exec build/release/examples/work_stealing "$@"
