# tools/lib/deps.sh: sourced by tools/*.sh and .ci/run.
#
#   weft_require_packages PACKAGE...
#
# Makes sure the Debian packages are installed. As root, installs the
# missing ones (refreshing the package lists first only when apt does not
# know a package); otherwise prints the apt-get command to run and fails.
# On a system without dpkg it trusts that the tools are there.

weft_require_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "weft: not a Debian system; assuming these are installed: $*" >&2
        return 0
    fi
    local missing=() pkg
    for pkg in "$@"; do
        if [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != "installed" ]; then
            missing+=("$pkg")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0

    if [ "$(id -u)" -ne 0 ]; then
        echo "weft: missing packages. Install them with:" >&2
        echo "    sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        return 1
    fi
    for pkg in "${missing[@]}"; do
        if ! apt-cache show "$pkg" >/dev/null 2>&1; then
            echo "weft: refreshing the package lists (apt-get update)" >&2
            apt-get update -qq
            break
        fi
    done
    echo "weft: installing ${missing[*]}" >&2
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
        # Stale package lists name versions the mirror no longer has.
        echo "weft: install failed; refreshing the package lists and trying again" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# What building and testing weft needs.
WEFT_BUILD_PACKAGES=(cmake ninja-build g++ catch2 relacy-dev)

# What benches/run needs (it adds the compiler it builds with, clang-19 by
# default: the fork-join figures to beat are clang-19's): the peers (oneTBB,
# standalone asio), wrk, tcmalloc (those figures ran on it), the ARM cross
# compilers (binary size).
WEFT_BENCH_PACKAGES=(cmake ninja-build g++ python3 libtbb-dev libasio-dev wrk libtcmalloc-minimal4
                     g++-aarch64-linux-gnu g++-arm-linux-gnueabihf)
# What the ARM cross builds need (presets aarch64, armhf, aarch64-noexcept):
# the cross compilers with their target libraries, and qemu-user to run the
# tests. Catch2 2.x is header-only, so the host's catch2 serves them.
WEFT_CROSS_PACKAGES=(g++-aarch64-linux-gnu g++-arm-linux-gnueabihf qemu-user)
