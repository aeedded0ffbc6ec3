# Cross-compiling weft for 64-bit ARM Linux (arm64, armv8-a) with Debian's
# g++-aarch64-linux-gnu, tests run under qemu-aarch64. See linux-gnu-cross.cmake.
set(WEFT_CROSS_TRIPLE aarch64-linux-gnu)
set(WEFT_CROSS_PROCESSOR aarch64)
set(WEFT_CROSS_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/linux-gnu-cross.cmake)
