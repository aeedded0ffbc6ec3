#!/usr/bin/env bash
# Build weft and run its test suite: the `dev` preset (g++, Debug, warnings
# as errors). Installs what is missing when run as root. Arguments go to
# ctest, e.g. `tools/test.sh -R local_queue`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/lib/deps.sh
weft_require_packages "${WEFT_BUILD_PACKAGES[@]}"

cmake --preset dev
cmake --build --preset dev -j "$(nproc)"
ctest --preset dev "$@"
