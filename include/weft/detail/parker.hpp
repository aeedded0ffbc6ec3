// weft/detail/parker.hpp
//
// What it is for: putting one worker thread to sleep when it has nothing to
// do, and waking exactly that worker. Each worker owns one parker: a 32-bit
// futex word, so a wake is one atomic exchange plus, only if the worker is
// really asleep, one FUTEX_WAKE.
//
// Where it comes from: Tokio's `multi_thread/park.rs` (EMPTY / PARKED /
// PARKED_DRIVER / NOTIFIED, one driver try-lock shared by the workers) and
// Rust std's futex-based thread parker.
//
// A parking worker that can take the driver's try-lock sleeps inside it
// (epoll_wait until the next timer), state PARKED_IN_DRIVER, and is woken by
// an eventfd write; every other parked worker sleeps on its futex word.
//
// Invariants:
//   - Only the owner calls park(); anyone calls unpark().
//   - An unpark() before park() is not lost: it leaves NOTIFIED behind, and
//     the next park() consumes it and returns at once (a token, not a count).
//   - unpark() swaps NOTIFIED in (release); park() consumes it with an
//     acquire RMW, so whatever the waker wrote before unpark() is visible
//     to the woken worker.
//   - The futex sleeper waits on the word while it holds PARKED; the waker
//     changes the word *before* FUTEX_WAKE, so the kernel's compare closes
//     the check-then-sleep window. The driver sleeper publishes
//     PARKED_IN_DRIVER before epoll_wait; a waker that swaps it out writes
//     the eventfd, which makes that (or the next) epoll_wait return.
//   - A worker fails the try-lock only while another holds the driver. If
//     that holder sleeps in it, this worker may sleep on its futex: the
//     holder delivers I/O and timers. If the holder is only polling, it will
//     run tasks next and nobody would watch the timers: retry instead.
//
// Generic over the atomic policy (futex included) and the driver type, so
// that tests/model/park_model.cpp runs this very code under Relacy with a
// modelled driver; production uses `parker` (std_policy, driver).
#pragma once

#include <atomic>
#include <cstdint>

#include <sched.h>

#include "atomic_policy.hpp"
#include "driver.hpp"

namespace weft::detail {

template <class Policy = std_policy, class Driver = driver>
class basic_parker {
public:
    /// Sleeps until unpark() is (or was already) called, inside the driver
    /// if it can take it (then I/O events and timers end the sleep too).
    /// Returns true if it slept in the driver: the driver was polled, and
    /// tasks it woke are queued on this thread's worker.
    bool park(Driver* drv) noexcept {
        std::uint32_t cur = notified;
        if (m_state.compare_exchange_strong(cur, empty, std::memory_order_acquire,
                                            std::memory_order_relaxed)) {
            return false;
        }
        if (drv != nullptr) {
            for (unsigned spins = 0;; ++spins) {
                if (drv->try_lock()) {
                    const bool slept = park_in_driver(*drv);
                    drv->unlock();
                    return slept;
                }
                if (drv->has_sleeper()) {
                    break; // it watches I/O and timers: sleep on the futex
                }
                // The holder is only polling and lets go within microseconds.
                // Our own token is not watched here: an unpark meanwhile
                // leaves NOTIFIED, which the sleep we are about to take (in
                // the driver or on the futex) consumes at once.
                Policy::spin_hint();
                if (spins > 64) {
                    ::sched_yield();
                }
            }
        }
        park_on_futex();
        return false;
    }

    /// What the owner is doing, as far as the parker knows.
    enum class observed : std::uint8_t {
        awake,            // not asleep, no wake-up pending
        parked,           // asleep on the futex
        parked_in_driver, // asleep in the driver
        notified,         // a wake-up is pending: not yet consumed by the owner
    };

    /// A snapshot of the state word, for metrics (relaxed: it orders nothing).
    observed observe() const noexcept {
        switch (m_state.load(std::memory_order_relaxed)) {
        case parked: return observed::parked;
        case parked_in_driver: return observed::parked_in_driver;
        case notified: return observed::notified;
        default: return observed::awake;
        }
    }

    /// Wakes the owner if it sleeps, or makes its next park() return at once.
    void unpark(Driver* drv) noexcept {
        // Always swap, even if already NOTIFIED: the release makes this
        // waker's writes visible to the acquire in park().
        switch (m_state.exchange(notified, std::memory_order_release)) {
        case parked: Policy::futex_wake(&m_state, 1); break;
        case parked_in_driver: drv->wake(); break;
        default: break;
        }
    }

private:
    static constexpr std::uint32_t empty = 0;
    static constexpr std::uint32_t parked = 1;
    static constexpr std::uint32_t parked_in_driver = 2;
    static constexpr std::uint32_t notified = 3;

    bool park_in_driver(Driver& drv) noexcept {
        std::uint32_t cur = empty;
        if (!m_state.compare_exchange_strong(cur, parked_in_driver, std::memory_order_seq_cst,
                                             std::memory_order_relaxed)) {
            // Notified meanwhile: consume it, do not sleep.
            m_state.exchange(empty, std::memory_order_acquire);
            return false;
        }
        drv.park();
        // Consumes a notification that arrived during the sleep (acquire:
        // see the header), or just leaves PARKED_IN_DRIVER.
        m_state.exchange(empty, std::memory_order_acquire);
        return true;
    }

    void park_on_futex() noexcept {
        std::uint32_t cur = empty;
        if (!m_state.compare_exchange_strong(cur, parked, std::memory_order_relaxed,
                                             std::memory_order_relaxed)) {
            // Notified between the two CASes: consume it.
            m_state.exchange(empty, std::memory_order_acquire);
            return;
        }
        for (;;) {
            Policy::futex_wait(&m_state, parked);
            cur = notified;
            if (m_state.compare_exchange_strong(cur, empty, std::memory_order_acquire,
                                                std::memory_order_relaxed)) {
                return;
            }
            // Spurious return (signal, or the word was still PARKED): sleep again.
        }
    }

    typename Policy::template atomic<std::uint32_t> m_state{empty};
};

using parker = basic_parker<>;

} // namespace weft::detail
