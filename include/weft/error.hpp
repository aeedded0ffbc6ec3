// weft/error.hpp: what weft reports when something is misused, and the hooks
// that receive errors when exceptions are off.
//
// Programming errors (calling block_on on a worker, spawning with no
// executor, using a join handle twice, ...) raise a weft::error, a
// std::system_error whose code() is a weft::errc and whose what() says what
// happened and what to do instead. Built with -fno-exceptions, the same
// message goes to the panic handler, which by default prints it and aborts.
#pragma once

#include <exception>
#include <string>
#include <system_error>
#include <type_traits>

#include "detail/handlers.hpp"

namespace weft {

/// Why weft refused or failed: the code of a weft::error, or the error of a
/// weft::result. A std::error_code compares with it directly
/// (`r.error() == weft::errc::timed_out`).
enum class errc {
    /// block_on was called on a thread that already drives weft tasks.
    nested_runtime = 1,
    /// A blocking call (join_handle::get, executor shutdown) on a worker.
    blocking_on_worker,
    /// weft::spawn or an awaitable used outside any executor's task.
    no_current_executor,
    /// The executor is shutting down or has shut down.
    executor_shut_down,
    /// The join handle is empty: already joined, detached, or moved from.
    invalid_handle,
    /// The task was aborted (or destroyed by shutdown) before it finished.
    task_aborted,
    /// A fixed capacity was exhausted.
    capacity_exhausted,
    /// A setting or argument is out of range.
    invalid_argument,
    /// The operating system refused to start a thread.
    thread_start_failed,
    /// A weft::timeout expired before the operation finished.
    timed_out,
    /// The stream ended (the peer closed it) before the expected bytes arrived.
    unexpected_eof,
    /// The descriptor (or channel) was closed while a task waited on it.
    closed,
    /// Another task already waits for the same thing (one waiter per
    /// direction of an async_fd).
    busy,
    /// An executor created before fork() was used in the child process,
    /// where its threads do not exist.
    used_after_fork,
    /// The operating system did not permit a setting: a real-time
    /// scheduling policy without CAP_SYS_NICE or a high enough RLIMIT_RTPRIO.
    not_permitted,
};

} // namespace weft

template <>
struct std::is_error_code_enum<weft::errc> : std::true_type {};

namespace weft {

namespace detail {
class error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "weft"; }
    std::string message(int code) const override {
        switch (static_cast<errc>(code)) {
        case errc::nested_runtime: return "cannot start a runtime from within a runtime";
        case errc::blocking_on_worker: return "blocking call on a worker thread";
        case errc::no_current_executor: return "no current executor";
        case errc::executor_shut_down: return "executor is shut down";
        case errc::invalid_handle: return "invalid join handle";
        case errc::task_aborted: return "task aborted";
        case errc::capacity_exhausted: return "capacity exhausted";
        case errc::invalid_argument: return "invalid argument";
        case errc::thread_start_failed: return "thread start failed";
        case errc::timed_out: return "timed out";
        case errc::unexpected_eof: return "unexpected end of stream";
        case errc::closed: return "closed while waiting";
        case errc::busy: return "another task is already waiting";
        case errc::used_after_fork: return "executor used in a child process after fork()";
        case errc::not_permitted: return "not permitted by the operating system";
        }
        return "unknown weft error";
    }
};
} // namespace detail

/// The category of weft::errc codes.
inline const std::error_category& error_category() noexcept {
    static const detail::error_category_impl instance;
    return instance;
}

/// A std::error_code for `code` in weft's category (also what lets
/// `ec == weft::errc::closed` compile).
inline std::error_code make_error_code(errc code) noexcept {
    return {static_cast<int>(code), error_category()};
}

/// A misuse of weft. `code()` compares equal to a weft::errc:
///
/// ```cpp
/// try { ex.block_on(t()); } catch (const weft::error& e) {
///     if (e.code() == weft::errc::nested_runtime) { /* ... */ }
/// }
/// ```
class error : public std::system_error {
public:
    /// A misuse error with weft's code and a message saying what to do instead.
    error(errc code, const char* message) : std::system_error(make_error_code(code), message) {}
    error(std::error_code code, const char* message) : std::system_error(code, message) {}
};

/// Receives misuse errors when exceptions are disabled; must not return
/// (if it does, the process aborts). Returns the previous handler.
using panic_handler = detail::panic_fn;
inline panic_handler set_panic_handler(panic_handler handler) noexcept {
    return detail::g_panic_handler.exchange(handler != nullptr ? handler : &detail::default_panic,
                                            std::memory_order_acq_rel);
}

/// Receives the exception of a task nobody joins (detached, or whose handle
/// was dropped unread); the worker keeps running. Returns the previous one.
using unhandled_exception_handler = detail::unhandled_exception_fn;
inline unhandled_exception_handler
set_unhandled_exception_handler(unhandled_exception_handler handler) noexcept {
    return detail::g_unhandled_exception_handler.exchange(
        handler != nullptr ? handler : &detail::default_unhandled_exception, std::memory_order_acq_rel);
}

namespace detail {
/// Raises a misuse error: throws weft::error, or panics without exceptions.
[[noreturn]] inline void raise(errc code, const char* message) {
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
    throw error(code, message);
#else
    panic(static_cast<int>(code), message);
#endif
}

/// Raises the error held by a weft::result whose value was asked for.
[[noreturn]] inline void raise_error_code(std::error_code code) {
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
    throw error(code, "weft::result::value() called on an error; check has_value() first");
#else
    panic(code.value(), "weft::result::value() called on an error; check has_value() first");
#endif
}
} // namespace detail

} // namespace weft
