// weft/detail/spinlock.hpp
//
// What it is for: the short critical sections of the scheduler (splicing a
// batch onto the global queue, the sleeper list of the idle set, a shard of
// the live-task list). Each hold is a handful of pointer writes, so a
// spinning test-and-test-and-set lock beats a futex mutex, and it never
// allocates or enters the kernel.
//
// Invariants: `m_locked` is true while a thread is inside. lock() acquires
// (pairs with unlock()'s release), so everything written inside one hold is
// visible inside the next. Waiters spin on a relaxed load (no cache-line
// ping-pong) with the CPU's pause/yield hint, and after a while also yield
// the CPU: on a 2-core board the holder may have been preempted.
#pragma once

#include <sched.h>

#include "atomic_policy.hpp"

namespace weft::detail {

template <class Policy = std_policy>
class basic_spinlock {
public:
    void lock() noexcept {
        for (unsigned spins = 0;; ++spins) {
            if (!m_locked.exchange(true, std::memory_order_acquire)) {
                return;
            }
            while (m_locked.load(std::memory_order_relaxed)) {
                Policy::spin_hint();
                if (++spins > 64) {
                    ::sched_yield();
                }
            }
        }
    }

    bool try_lock() noexcept {
        return !m_locked.load(std::memory_order_relaxed) &&
               !m_locked.exchange(true, std::memory_order_acquire);
    }

    void unlock() noexcept { m_locked.store(false, std::memory_order_release); }

private:
    typename Policy::template atomic<bool> m_locked{false};
};

using spinlock = basic_spinlock<>;

/// Scoped hold of a spinlock (std::lock_guard without <mutex>).
template <class Lock>
class lock_hold {
public:
    explicit lock_hold(Lock& lock) noexcept : m_lock(lock) { m_lock.lock(); }
    ~lock_hold() { m_lock.unlock(); }
    lock_hold(const lock_hold&) = delete;
    lock_hold& operator=(const lock_hold&) = delete;

private:
    Lock& m_lock;
};

} // namespace weft::detail
