// weft/detail/futex.hpp
//
// What it is for: sleeping on, and waking, a 32-bit word, with the Linux
// futex system call issued directly. weft does not park through
// std::atomic::wait or a condition variable: libc++'s wait could miss
// notifications (llvm-project#109290) and GCC's had bugs (GCC 106772), and a
// direct futex lets a parked worker be woken with one system call and no
// mutex. Callers own the protocol (what value means "sleeping"); this file
// only issues the calls.
//
// FUTEX_WAIT returns at once if the word no longer holds `expected`, which is
// what closes the check-then-sleep window: a waker changes the word *before*
// calling wake, so a sleeper either sees the new value or is woken.
#pragma once

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <ctime>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace weft::detail {

// The word must be a plain 32-bit integer in memory for the kernel.
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t),
              "futex words must be exactly 32 bits");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free, "futex words must be lock-free atomics");

namespace futex_sys {
// A 32-bit target whose time_t is 64-bit (armhf built with _TIME_BITS=64)
// must use the time64 call, whose timespec matches its own; everywhere else
// the classic call takes the native timespec.
#if defined(SYS_futex_time64) && defined(SYS_futex)
inline constexpr long number = sizeof(std::time_t) > sizeof(long) ? SYS_futex_time64 : SYS_futex;
#elif defined(SYS_futex_time64)
inline constexpr long number = SYS_futex_time64;
#else
inline constexpr long number = SYS_futex;
#endif
} // namespace futex_sys

/// Sleeps while `*word == expected`, at most `timeout` if not null (a
/// relative time). Returns on a wake, a value change, a signal, a timeout or
/// spuriously: callers re-check their condition in a loop.
inline void futex_wait(const std::atomic<std::uint32_t>* word, std::uint32_t expected,
                       const timespec* timeout = nullptr) noexcept {
    ::syscall(futex_sys::number, reinterpret_cast<const std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected,
              timeout, nullptr, 0);
}

/// Wakes at most `count` threads sleeping on `word`.
inline void futex_wake(const std::atomic<std::uint32_t>* word, int count = 1) noexcept {
    ::syscall(futex_sys::number, reinterpret_cast<const std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, count,
              nullptr, nullptr, 0);
}

inline void futex_wake_all(const std::atomic<std::uint32_t>* word) noexcept { futex_wake(word, INT_MAX); }

} // namespace weft::detail
