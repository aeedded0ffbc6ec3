# Cross-compiling weft for 32-bit ARM Linux (armhf: armv7-a, hard float,
# Thumb-2) with Debian's g++-arm-linux-gnueabihf, tests run under qemu-arm.
# See linux-gnu-cross.cmake. On armv7-a 64-bit atomics are lock-free
# (ldrexd/strexd); weft checks it at compile time.
set(WEFT_CROSS_TRIPLE arm-linux-gnueabihf)
set(WEFT_CROSS_PROCESSOR arm)
set(WEFT_CROSS_QEMU qemu-arm)
include(${CMAKE_CURRENT_LIST_DIR}/linux-gnu-cross.cmake)
