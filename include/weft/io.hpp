// weft/io.hpp: waiting for any pollable file descriptor.
//
// `weft::async_fd` registers a descriptor you own (a pipe, a tty or UART, a
// CAN or raw socket, an eventfd, a timerfd, ...) with the executor's
// reactor: tasks then await its readiness, or run read/write operations
// that retry on EAGAIN, without blocking a worker.
//
// ```cpp
// weft::task<> echo_uart(int fd) {
//     auto uart = weft::async_fd::open(fd); // made non-blocking
//     if (!uart) co_return;
//     std::array<std::byte, 256> buf;
//     for (;;) {
//         auto n = co_await uart->read(buf);
//         if (!n || *n == 0) co_return; // error or end of file
//         co_await uart->write(std::span(buf).first(*n));
//     }
// }
// ```
//
// Readiness is edge-triggered and remembered per direction with the tick of
// the event that set it; an operation that gets EAGAIN forgets only the
// readiness it saw, so an event that arrived meanwhile is not lost. Hang-up
// is remembered for good: register a socket only once it is connected or
// listening (before, the kernel reports it hung up). One task
// at a time may wait per direction (a second gets errc::busy). Closing the
// async_fd (close(), release(), or its destructor) wakes a waiting task with
// errc::closed. Regular files are always "ready" and epoll refuses them
// (EPERM): read those with spawn_blocking. An async_fd must not outlive its
// executor.
//
// The operations that are coroutines are marked WEFT_COMPILED_ON_USE (see
// detail/attributes.hpp): compiled only in the files that call them.
#pragma once

#include <atomic>
#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include <unistd.h>

#include "detail/attributes.hpp"
#include "detail/driver.hpp"
#include "detail/reactor.hpp"
#include "detail/scheduler.hpp"
#include "error.hpp"
#include "result.hpp"
#include "task.hpp"
#include "time.hpp"

namespace weft {

namespace detail {

/// Awaits one direction of a registration. Resumes with the readiness word
/// that satisfied it (for clear_readiness), or an error: errc::closed if
/// the registration went away, errc::busy if another task waits already.
class io_awaiter {
public:
    io_awaiter(driver* drv, io_key key, io_direction dir) noexcept : m_driver(drv), m_key(key), m_dir(dir) {}
    /// Movable until awaited (so it can be handed to weft::timeout).
    io_awaiter(io_awaiter&& other) noexcept
        : m_driver(other.m_driver), m_key(other.m_key), m_dir(other.m_dir) {}
    io_awaiter& operator=(const io_awaiter&) = delete;
    ~io_awaiter() {
        if (m_registered && m_driver->io().cancel_wait(m_key, m_dir, m_waiter)) {
            ref_dec(m_waiter.task); // never fired: its reference is ours
        }
    }

    bool await_ready() noexcept {
        if (m_driver == nullptr) {
            m_observed = io_ready::shutdown;
            return true;
        }
        m_observed = m_driver->io().readiness(m_key);
        return (m_observed & (interest_of(m_dir) | io_ready::shutdown)) != 0 && consume_budget();
    }

    bool await_suspend(std::coroutine_handle<> awaiting) {
        task_header* self = t_context.current;
        if (self == nullptr) {
            raise(errc::no_current_executor, "an async_fd was awaited outside a task run by a weft executor");
        }
        ref_inc(self); // the waiter's reference
        m_waiter.task = self;
        switch (m_driver->io().wait(m_key, m_dir, m_waiter, m_observed)) {
        case reactor::wait_status::registered:
            m_registered = true;
            suspend_until(self, awaiting, &m_waiter.fired, fired_ready | fired_closed);
            return true;
        case reactor::wait_status::busy: m_error = make_error_code(errc::busy); break;
        case reactor::wait_status::ready: break;
        }
        ref_dec(self);
        return m_error ? false : complete_or_yield(self, awaiting); // busy: resume at once with the error
    }

    result<std::uint64_t> await_resume() noexcept {
        if (m_registered) {
            m_registered = false;
            // Acquire: pairs with the reactor's release in fire().
            if (m_waiter.fired.load(std::memory_order_acquire) == fired_closed) {
                return make_error_code(errc::closed);
            }
            m_observed = m_waiter.observed;
        }
        if (m_error) {
            return m_error;
        }
        if ((m_observed & io_ready::shutdown) != 0) {
            return make_error_code(errc::closed);
        }
        return m_observed;
    }

private:
    driver* m_driver;
    io_key m_key;
    io_direction m_dir;
    bool m_registered = false;
    std::uint64_t m_observed = 0;
    std::error_code m_error;
    io_waiter m_waiter;
};

/// io_awaiter for users: says only whether the descriptor is ready.
class readiness_awaiter : public io_awaiter {
public:
    using io_awaiter::io_awaiter;
    result<void> await_resume() noexcept {
        result<std::uint64_t> word = io_awaiter::await_resume();
        return word ? result<void>() : result<void>(word.error());
    }
};

} // namespace detail

/// A descriptor registered with the current executor's reactor. Move-only.
/// It does not own the descriptor: destroying it deregisters, and the
/// caller closes the descriptor afterwards, once every operation on it has
/// returned. close() may be called by any task while others wait on it or
/// start operations on it; moving or destroying it meanwhile may not.
class async_fd {
public:
    async_fd() noexcept = default;
    async_fd(async_fd&& other) noexcept
        : m_driver(other.m_driver.exchange(nullptr, std::memory_order_relaxed)), m_key(other.m_key),
          m_fd(other.m_fd.exchange(-1, std::memory_order_relaxed)) {}
    async_fd& operator=(async_fd&& other) noexcept {
        if (this != &other) {
            close();
            m_key = other.m_key;
            m_fd.store(other.m_fd.exchange(-1, std::memory_order_relaxed), std::memory_order_relaxed);
            m_driver.store(other.m_driver.exchange(nullptr, std::memory_order_relaxed),
                           std::memory_order_relaxed);
        }
        return *this;
    }
    async_fd(const async_fd&) = delete;
    async_fd& operator=(const async_fd&) = delete;
    ~async_fd() { close(); }

    /// Registers `fd` (and makes it non-blocking) with the executor running
    /// the calling task. Errors: EBADF for a descriptor that is not open,
    /// EPERM for one epoll cannot watch (a regular file), EEXIST if it is
    /// registered already, errc::capacity_exhausted when all
    /// Options::max_io_sources registrations are in use. Raises
    /// errc::no_current_executor outside a weft task.
    static result<async_fd> open(int fd) {
        detail::driver& drv =
            detail::current_driver("weft::async_fd::open was called outside a task run by a weft executor");
        detail::io_key key;
        const int rc = drv.io().register_fd(fd, key);
        if (rc == detail::reactor::slab_full) {
            return make_error_code(errc::capacity_exhausted);
        }
        if (rc != 0) {
            return std::error_code(rc, std::generic_category());
        }
        return async_fd(&drv, key, fd);
    }

    /// The descriptor (still owned by the caller), or -1.
    int native_handle() const noexcept { return m_fd.load(std::memory_order_acquire); }
    /// True while registered. (Relaxed loads of m_driver: the driver outlives
    /// the async_fd, so a stale pointer still names a live driver, and a wait
    /// through it on a key that close() retired ends with errc::closed.)
    bool valid() const noexcept { return m_driver.load(std::memory_order_relaxed) != nullptr; }

    /// Waits until the descriptor is readable, at end of file, or in error.
    /// The readiness may be stale (the data consumed by someone else): the
    /// next read can still fail with EAGAIN. Prefer read() / read_with().
    [[nodiscard]] detail::readiness_awaiter readable() noexcept {
        return {m_driver.load(std::memory_order_relaxed), m_key, detail::io_direction::read};
    }
    /// Waits until the descriptor is writable (or hung up, or in error).
    [[nodiscard]] detail::readiness_awaiter writable() noexcept {
        return {m_driver.load(std::memory_order_relaxed), m_key, detail::io_direction::write};
    }

    /// Runs `op` once the descriptor is readable: `op()` returns a
    /// byte count (>= 0) or -1 with errno set. On EAGAIN it forgets the
    /// readiness it saw and waits again; on EINTR it retries.
    template <class Op>
    [[nodiscard]] task<result<std::size_t>> read_with(Op op) {
        return run(detail::io_direction::read, std::move(op));
    }
    /// As read_with(), for writing.
    template <class Op>
    [[nodiscard]] task<result<std::size_t>> write_with(Op op) {
        return run(detail::io_direction::write, std::move(op));
    }

    /// read(2) of at most `buffer.size()` bytes; 0 means end of file.
    WEFT_COMPILED_ON_USE
    [[nodiscard]] task<result<std::size_t>> read(std::span<std::byte> buffer) {
        return read_with(
            [fd = native_handle(), buffer]() noexcept { return ::read(fd, buffer.data(), buffer.size()); });
    }
    /// write(2) of at most `buffer.size()` bytes; returns how many went.
    WEFT_COMPILED_ON_USE
    [[nodiscard]] task<result<std::size_t>> write(std::span<const std::byte> buffer) {
        return write_with(
            [fd = native_handle(), buffer]() noexcept { return ::write(fd, buffer.data(), buffer.size()); });
    }

    /// Deregisters: tasks waiting on it wake with errc::closed. The
    /// descriptor stays open (the caller owns it).
    void close() noexcept { (void)release(); }

    /// Deregisters and returns the descriptor (-1 if closed already).
    int release() noexcept {
        // The driver goes first, then the descriptor with release: an
        // operation that reads the descriptor as -1 (acquire, in
        // native_handle) then finds no driver and ends with errc::closed,
        // never running on -1.
        detail::driver* drv = m_driver.exchange(nullptr, std::memory_order_acq_rel);
        const int fd = m_fd.exchange(-1, std::memory_order_acq_rel);
        if (drv != nullptr) {
            drv->io().deregister(m_key); // the slot's lock orders this against the waiters
        }
        return fd;
    }

private:
    async_fd(detail::driver* drv, detail::io_key key, int fd) noexcept
        : m_driver(drv), m_key(key), m_fd(fd) {}

    // The loop of read_with / write_with. It reads the members once: close()
    // from another task may reset them while this waits, and then the wait
    // ends with errc::closed (a clear with the old key touches nothing).
    template <class Op>
    task<result<std::size_t>> run(detail::io_direction dir, Op op) {
        detail::driver* const drv = m_driver.load(std::memory_order_relaxed);
        const detail::io_key key = m_key;
        for (;;) {
            result<std::uint64_t> ready = co_await detail::io_awaiter(drv, key, dir);
            if (!ready) {
                co_return ready.error();
            }
            const auto n = op();
            if (n >= 0) {
                co_return static_cast<std::size_t>(n);
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                drv->io().clear_readiness(key, *ready, dir);
            } else if (errno != EINTR) {
                co_return detail::last_error();
            }
        }
    }

    // Atomic so that close() from one task and an operation starting in
    // another do not race; the key is only written by construction and moves.
    std::atomic<detail::driver*> m_driver{nullptr};
    detail::io_key m_key;
    std::atomic<int> m_fd{-1};
};

} // namespace weft
