# The part of weft's cross toolchain files that does not depend on the target:
# included by aarch64-linux-gnu.cmake and arm-linux-gnueabihf.cmake after they
# set WEFT_CROSS_TRIPLE (the GNU triple), WEFT_CROSS_PROCESSOR and
# WEFT_CROSS_QEMU (the qemu-user program for that CPU).
#
# What it expects on the host (Debian 12):
#   - the cross compiler g++-<triple> (package g++-aarch64-linux-gnu or
#     g++-arm-linux-gnueabihf), whose C and C++ libraries live in /usr/<triple>;
#   - qemu-user, to run the target's programs: CTest runs every test through
#     CMAKE_CROSSCOMPILING_EMULATOR, `qemu-<cpu> -L /usr/<triple>`, where -L
#     is the sysroot holding the target's dynamic loader and libraries.
#   - Catch2 for the tests. Debian 12's catch2 (2.x) is header-only: the same
#     /usr/include/catch2/catch.hpp serves every target, and weft compiles its
#     main() itself, so nothing target-specific is needed. A Catch2 3.x is a
#     compiled library: it must be built for the target and found through
#     CMAKE_PREFIX_PATH (the host's libCatch2.a does not link).
#
# Usage: cmake --preset aarch64 (or armhf), or
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ${WEFT_CROSS_PROCESSOR})

set(CMAKE_C_COMPILER ${WEFT_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${WEFT_CROSS_TRIPLE}-g++)

# Libraries come from the target's tree only; programs (qemu, python) from the
# host. Headers and CMake packages are searched in both, because the
# architecture-independent ones (Catch2 2.x, Relacy) are installed under the
# host's /usr.
set(CMAKE_FIND_ROOT_PATH /usr/${WEFT_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

set(CMAKE_CROSSCOMPILING_EMULATOR ${WEFT_CROSS_QEMU} -L /usr/${WEFT_CROSS_TRIPLE})
