// Helpers shared by weft's tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <thread>

namespace weft_test {

/// Sizes of the heavy tests, divided by WEFT_TEST_SCALE_DIV when set (for
/// slow targets such as qemu-user emulation). Never below 1.
inline std::uint64_t scaled(std::uint64_t n) {
    const char* div = std::getenv("WEFT_TEST_SCALE_DIV");
    std::uint64_t d = div != nullptr ? std::strtoull(div, nullptr, 10) : 1;
    if (d == 0) {
        d = 1;
    }
    return n / d > 0 ? n / d : 1;
}

/// Polls `done()` until it holds or `limit` passes; returns done(). The
/// limit only turns a hang into a failure: passing never depends on speed.
template <class Pred>
bool wait_until(Pred done, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return done();
        }
        std::this_thread::yield();
    }
    return true;
}

} // namespace weft_test
