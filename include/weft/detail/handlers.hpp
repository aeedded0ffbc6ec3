// weft/detail/handlers.hpp
//
// What it is for: the two process-wide hooks a user may replace, stored
// where both the scheduler internals and the public API can reach them:
//   - the panic handler: receives misuse errors when exceptions are off
//     (-fno-exceptions); the default prints the message and aborts;
//   - the unhandled-exception handler: receives the exception of a task that
//     nobody joins (detached, or its handle dropped unread); the default
//     prints it and the worker keeps running.
// Both are atomics of function pointers: replacing one is safe while
// executors run (acquire/release pairs the store with the call).
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>

namespace weft::detail {

using panic_fn = void (*)(int code, const char* message) noexcept;
using unhandled_exception_fn = void (*)(std::exception_ptr) noexcept;

inline void default_panic(int /*code*/, const char* message) noexcept {
    std::fprintf(stderr, "weft: fatal: %s\n", message);
    std::fflush(stderr);
}

inline void default_unhandled_exception(std::exception_ptr error) noexcept {
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "weft: exception in a task nobody joined: %s\n", e.what());
    } catch (...) {
        std::fprintf(stderr, "weft: exception in a task nobody joined (not a std::exception)\n");
    }
#else
    (void)error;
    std::fprintf(stderr, "weft: exception in a task nobody joined\n");
#endif
}

inline std::atomic<panic_fn> g_panic_handler{&default_panic};
inline std::atomic<unhandled_exception_fn> g_unhandled_exception_handler{&default_unhandled_exception};

/// Reports a fatal misuse and ends the process (exceptions off).
[[noreturn]] inline void panic(int code, const char* message) noexcept {
    g_panic_handler.load(std::memory_order_acquire)(code, message);
    std::abort(); // a handler that returns still ends the process
}

inline void report_unhandled_exception(std::exception_ptr error) noexcept {
    g_unhandled_exception_handler.load(std::memory_order_acquire)(std::move(error));
}

} // namespace weft::detail
